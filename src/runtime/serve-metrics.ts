// Prometheus metrics of the edge inference server (`sedna-ll serve`, GET /metrics; names in
// README "Metrics"). src/runtime/serve.ts imports this module lazily: prom-client must not slow
// down the one-shot commands' start-up.
//
// Per scrape: a few kv point reads (outbox bytes, eviction counters, the active version's trial
// record). The outbox's sample counts need a scan of the samples table, so they are re-read at
// most every OUTBOX_COUNTS_MAX_AGE_MS.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { CachedRead } from '../metrics/cached-read.js';
import { LATENCY_BUCKETS, newRegistry } from '../metrics/prometheus.js';
import type { DB } from '../store/db.js';
import type { Outbox, OutboxCounts } from '../store/outbox.js';
import { parseTrial } from '../rollout/state.js';
import { getVersion } from '../store/versions.js';
import { activeVersionId } from './state.js';

export const OUTBOX_COUNTS_MAX_AGE_MS = 15_000;
const PREFIX = 'sedna_ll_edge_';
const TRIAL_PHASES = ['none', 'observing', 'passed', 'failed'] as const;

/** How concurrent requests shared work (serve-batcher.ts, store/wal-durability.ts), read when scraped. */
export interface BatchingCounts {
  batches: number;
  batchedRequests: number;
  /** fdatasyncs of the outbox's WAL that answers waited for */
  fsyncs: number;
}

export class EdgeServeMetrics {
  readonly registry: Registry;
  /** answers by route, then status */
  private readonly answered = new Map<string, Map<number, number>>();
  private readonly inferDuration: Histogram;
  private readonly records: Counter<'outcome'>;

  constructor(db: DB, outbox: Outbox, batching: () => BatchingCounts) {
    const registry = (this.registry = newRegistry());
    const registers = [registry];
    // counted in plain numbers per request (prom-client's inc with labels hashes them every call)
    // and handed to the counter when scraped (the registry holds it; nothing else needs it)
    const answered = this.answered;
    new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by route and status.',
      labelNames: ['route', 'status'],
      registers,
      collect(this: Counter<'route' | 'status'>) {
        this.reset();
        for (const [route, byStatus] of answered) for (const [status, n] of byStatus) this.inc({ route, status: String(status) }, n);
      },
    });
    this.inferDuration = new Histogram({
      name: `${PREFIX}inference_duration_seconds`,
      help: 'Time to answer one POST /infer (decode, inference, hard/unseen logging committed), any number of records.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.records = new Counter({ name: `${PREFIX}inference_records_total`, help: 'Records inferred, by outcome (ok, or error: a bad record).', labelNames: ['outcome'], registers });

    // counters kept elsewhere (the batcher, the WAL, the home's kv), set from there at each scrape
    const readCounter = (name: string, help: string, read: () => number) =>
      new Counter({
        name: PREFIX + name,
        help,
        registers,
        collect(this: Counter) {
          this.reset();
          this.inc(read());
        },
      });
    // requests per batch and per fsync: how much a model run, a commit and an fdatasync are
    // shared at the current concurrency
    const shared = (name: string, help: string, field: keyof BatchingCounts) => readCounter(name, help, () => batching()[field]);
    shared('serve_batches_total', 'Batches run: one model run per task and one outbox commit, shared by the POST /infer requests queued meanwhile.', 'batches');
    shared('serve_batched_requests_total', 'POST /infer requests run in those batches.', 'batchedRequests');
    shared('outbox_fsyncs_total', 'fdatasyncs of the outbox WAL that logged answers waited for (one covers every batch committed before it).', 'fsyncs');

    const counts = new CachedRead<OutboxCounts>(() => outbox.counts(), OUTBOX_COUNTS_MAX_AGE_MS);
    new Gauge({
      name: `${PREFIX}outbox_samples`,
      help: `Samples in the outbox by state (pending: not yet uploaded). Re-read at most every ${OUTBOX_COUNTS_MAX_AGE_MS / 1000} s.`,
      labelNames: ['state'],
      registers,
      async collect(this: Gauge<'state'>) {
        const c = await counts.get();
        this.set({ state: 'pending' }, c.pending);
        this.set({ state: 'uploaded' }, c.uploaded);
      },
    });
    new Gauge({
      name: `${PREFIX}outbox_bytes`,
      help: 'Bytes the outbox holds, as the quota counts them.',
      registers,
      collect(this: Gauge) {
        this.set(outbox.trackedBytes());
      },
    });
    new Gauge({ name: `${PREFIX}outbox_quota_bytes`, help: 'Outbox quota in bytes (0: unlimited).', registers }).set(outbox.maxBytes);
    // eviction counters live in the home's kv (all processes add to them)
    const evicted = (name: string, help: string, field: 'count' | 'bytes') => readCounter(name, help, () => outbox.evictionCounters()[field]);
    evicted('outbox_evicted_samples_total', 'Samples evicted from the outbox by the quota since the home was created.', 'count');
    evicted('outbox_evicted_bytes_total', 'Bytes evicted from the outbox by the quota since the home was created.', 'bytes');

    // the active version and its trial (src/rollout/trial.ts): point reads of kv and one row
    const trial = () => {
      const id = activeVersionId(db);
      const row = id === null ? null : getVersion(db, id);
      return { id, row, t: row && row.state === 'trial' ? parseTrial(row) : null };
    };
    new Gauge({
      name: `${PREFIX}active_version_info`,
      help: 'The active KB version (label version; "none" before any).',
      labelNames: ['version'],
      registers,
      collect(this: Gauge<'version'>) {
        this.reset();
        this.set({ version: activeVersionId(db) ?? 'none' }, 1);
      },
    });
    new Gauge({
      name: `${PREFIX}trial_phase`,
      help: 'Trial of the active version: 1 for its phase (none: committed or never on trial), 0 for the others.',
      labelNames: ['phase'],
      registers,
      collect(this: Gauge<'phase'>) {
        const phase = trial().t?.phase ?? 'none';
        for (const p of TRIAL_PHASES) this.set({ phase: p }, p === phase ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}trial_inferences`,
      help: 'Inferences the active version has served on trial so far (0 when not on trial).',
      registers,
      collect(this: Gauge) {
        this.set(trial().t?.n ?? 0);
      },
    });
    new Gauge({
      name: `${PREFIX}trial_required_inferences`,
      help: 'Inferences the active version must serve before its trial is decided (0 when not on trial).',
      registers,
      collect(this: Gauge) {
        this.set(trial().t?.inferences ?? 0);
      },
    });
  }

  request(route: string, status: number): void {
    let byStatus = this.answered.get(route);
    if (!byStatus) this.answered.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  }

  inference(seconds: number, ok: number, bad: number): void {
    this.inferDuration.observe(seconds);
    if (ok) this.records.inc({ outcome: 'ok' }, ok);
    if (bad) this.records.inc({ outcome: 'error' }, bad);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
