// Prometheus text exposition of the KB server: request counters kept in memory, gauges read
// from the store at scrape time.
import type { KbStats } from './store.js';

export class ServerMetrics {
  private readonly requests = new Map<string, number>();
  private samplesReceived = 0;
  private samplesInserted = 0;
  private readonly started = Date.now();

  private readonly durations = new Map<string, { sum: number; count: number }>();

  request(method: string, route: string, status: number, ms = 0): void {
    const k = `${method}\u0000${route}\u0000${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    const dk = `${method}\u0000${route}`;
    const d = this.durations.get(dk) ?? { sum: 0, count: 0 };
    d.sum += ms / 1000;
    d.count++;
    this.durations.set(dk, d);
  }

  samples(received: number, inserted: number): void {
    this.samplesReceived += received;
    this.samplesInserted += inserted;
  }

  render(stats: KbStats, counters: Record<string, number>): string {
    const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const out: string[] = [];
    out.push('# HELP sedna_kb_requests_total HTTP requests by method, route and status.', '# TYPE sedna_kb_requests_total counter');
    for (const [k, n] of [...this.requests].sort()) {
      const [method, route, status] = k.split('\u0000');
      out.push(`sedna_kb_requests_total{method="${esc(method)}",route="${esc(route)}",status="${status}"} ${n}`);
    }
    out.push('# HELP sedna_kb_request_duration_seconds Time to answer requests, by method and route.', '# TYPE sedna_kb_request_duration_seconds summary');
    for (const [k, d] of [...this.durations].sort()) {
      const [method, route] = k.split('\u0000');
      const l = `method="${esc(method)}",route="${esc(route)}"`;
      out.push(`sedna_kb_request_duration_seconds_sum{${l}} ${d.sum.toFixed(6)}`, `sedna_kb_request_duration_seconds_count{${l}} ${d.count}`);
    }
    out.push('# HELP sedna_kb_samples_received_total Samples received in pushes since start.', '# TYPE sedna_kb_samples_received_total counter');
    out.push(`sedna_kb_samples_received_total ${this.samplesReceived}`);
    out.push('# HELP sedna_kb_samples_inserted_total New samples stored since start.', '# TYPE sedna_kb_samples_inserted_total counter');
    out.push(`sedna_kb_samples_inserted_total ${this.samplesInserted}`);
    const gauge = (name: string, help: string, v: number) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    gauge('sedna_kb_samples_stored', 'Samples stored in the KB.', stats.samples);
    gauge('sedna_kb_samples_labelled', 'Stored samples with a label.', stats.labelled);
    gauge('sedna_kb_devices', 'Enrolled devices (revoked included).', stats.devices);
    gauge('sedna_kb_devices_active', 'Enrolled devices not revoked.', stats.active_devices);
    gauge('sedna_kb_versions', 'Published KB versions.', stats.versions);
    gauge('sedna_kb_tasks', 'Tasks registered in the KB.', stats.tasks);
    out.push('# HELP sedna_kb_counter KB counters (e.g. labelled_new) used by training conditions.', '# TYPE sedna_kb_counter gauge');
    for (const [name, v] of Object.entries(counters)) out.push(`sedna_kb_counter{name="${esc(name)}"} ${v}`);
    gauge('sedna_kb_uptime_seconds', 'Seconds since the server started.', Math.round((Date.now() - this.started) / 1000));
    return out.join('\n') + '\n';
  }
}
