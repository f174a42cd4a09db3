// Prometheus metrics of the KB server (prom-client; names in README "Metrics"). The prefix is
// sedna_ll_knowledgebase_: "kb" as a name part reads as kilobytes (promtool lints it).
//
// A scrape must stay cheap on a KB with millions of samples: request and push metrics are
// counted in memory as they happen; the store's totals (samples, labelled, devices, ...) need
// count(*) over the samples table, so they are read at most every STATS_MAX_AGE_MS and kept
// current in between by this server's own writes (an import by another process shows within
// that time); devices, versions and tasks are small tables, counted per scrape.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { CachedRead } from '../metrics/cached-read.js';
import { LATENCY_BUCKETS, newRegistry } from '../metrics/prometheus.js';
import type { CounterStore, KbStats } from './store.js';

/** How old the store totals may get before a scrape re-reads them. */
export const STATS_MAX_AGE_MS = 5 * 60_000;

const PREFIX = 'sedna_ll_knowledgebase_';

export class KbMetrics {
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'method' | 'route'>;
  private readonly pushDuration: Histogram<'kind'>;
  private readonly received: Counter;
  private readonly inserted: Counter;
  private readonly labelsStored: Counter;

  readonly registry: Registry;
  private readonly stats: CachedRead<KbStats>;

  constructor(store: Pick<CounterStore, 'stats' | 'fleetStats' | 'counters'>, opts: { statsMaxAgeMs?: number } = {}) {
    const registry = (this.registry = newRegistry());
    const stats = (this.stats = new CachedRead(() => store.stats(), opts.statsMaxAgeMs ?? STATS_MAX_AGE_MS));
    const buckets = LATENCY_BUCKETS;
    const registers = [registry];
    this.requests = new Counter({ name: `${PREFIX}http_requests_total`, help: 'HTTP requests answered, by method, route and status.', labelNames: ['method', 'route', 'status'], registers });
    this.duration = new Histogram({ name: `${PREFIX}http_request_duration_seconds`, help: 'Time to answer HTTP requests, by method and route.', labelNames: ['method', 'route'], buckets, registers });
    this.pushDuration = new Histogram({
      name: `${PREFIX}push_duration_seconds`,
      help: 'Time to store one pushed batch until its transaction committed, by kind (samples or labels).',
      labelNames: ['kind'],
      buckets,
      registers,
    });
    this.received = new Counter({ name: `${PREFIX}samples_received_total`, help: 'Samples received in device pushes.', registers });
    this.inserted = new Counter({ name: `${PREFIX}samples_inserted_total`, help: 'Pushed samples that were new to the KB.', registers });
    this.labelsStored = new Counter({ name: `${PREFIX}labels_stored_total`, help: 'Labels stored from device and admin pushes.', registers });
    // samples and labelled: count(*) over the biggest table, so cached (see above)
    const big: ['samples' | 'labelled', string, string][] = [
      ['samples', 'samples', 'Samples stored in the KB.'],
      ['labelled', 'samples_labelled', 'Stored samples with a label.'],
    ];
    for (const [field, name, help] of big) {
      new Gauge({
        name: PREFIX + name,
        help: `${help} Re-read at most every ${stats.maxAgeMs / 1000} s, kept current in between by this server's writes.`,
        registers,
        async collect(this: Gauge) {
          this.set((await stats.get())[field]);
        },
      });
    }
    // devices, versions, tasks: small tables, counted per scrape
    const small: [keyof Awaited<ReturnType<CounterStore['fleetStats']>>, string, string][] = [
      ['devices', 'devices', 'Enrolled devices, revoked ones included.'],
      ['active_devices', 'devices_active', 'Enrolled devices not revoked.'],
      ['versions', 'versions', 'Published KB versions.'],
      ['tasks', 'tasks', 'Tasks registered in the KB (retired ones excluded).'],
    ];
    for (const [field, name, help] of small) {
      new Gauge({
        name: PREFIX + name,
        help,
        registers,
        async collect(this: Gauge) {
          this.set((await store.fleetStats())[field]);
        },
      });
    }
    // the counters table is small (one row per trigger name): read per scrape
    new Gauge({
      name: `${PREFIX}learn_trigger_value`,
      help: 'KB counters read by training conditions (kb train --when), e.g. labelled_new, by name.',
      labelNames: ['name'],
      registers,
      async collect(this: Gauge<'name'>) {
        this.reset();
        for (const [name, v] of Object.entries(await store.counters())) this.set({ name }, v);
      },
    });
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.duration.observe({ method, route }, seconds);
  }

  samplesPushed(seconds: number, received: number, inserted: number, labelled: number): void {
    this.pushDuration.observe({ kind: 'samples' }, seconds);
    this.received.inc(received);
    this.inserted.inc(inserted);
    this.stats.update((s) => {
      s.samples += inserted;
      s.labelled += labelled;
    });
  }

  labelsPushed(seconds: number | null, stored: number, newlyLabelled: number): void {
    if (seconds !== null) this.pushDuration.observe({ kind: 'labels' }, seconds);
    this.labelsStored.inc(stored);
    this.stats.update((s) => (s.labelled += newlyLabelled));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
