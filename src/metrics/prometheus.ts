// Shared by the KB server's and the edge server's /metrics (prom-client): one registry per
// server (several servers can run in one process, e.g. in tests), the process/Node.js default
// metrics, and the latency buckets both use. Only the servers' modules import this, and they
// are imported lazily: prom-client costs start-up time that one-shot commands must not pay.
import { Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets in seconds: 1 ms .. 30 s, enough for an inference and for a large push. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// prom-client's gauges that end in _total, which promtool refuses ("non-counter metrics should
// not have _total suffix"); each is the sum of a gauge kept next to it with a `type` label
// (nodejs_active_handles{type}, ...), so dropping them loses nothing.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** A registry with the default process_* and nodejs_* metrics. */
export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  return registry;
}
