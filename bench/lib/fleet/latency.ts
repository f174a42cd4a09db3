// Latencies per endpoint (ms, every HTTP exchange, whatever its status) and the run's error
// counters, as the simulated devices see them.

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export class Latencies {
  private readonly ms = new Map<string, number[]>();
  /** answers >= 500 per endpoint */
  readonly status5xx = new Map<string, number>();
  /** every non-2xx status seen, "endpoint status" -> count */
  readonly statuses = new Map<string, number>();
  /** connection refused/reset, timeouts: no HTTP answer at all */
  readonly networkErrors = new Map<string, number>();

  record(endpoint: string, ms: number, status: number | null): void {
    if (status === null) {
      this.networkErrors.set(endpoint, (this.networkErrors.get(endpoint) ?? 0) + 1);
      return;
    }
    let l = this.ms.get(endpoint);
    if (!l) this.ms.set(endpoint, (l = []));
    l.push(ms);
    if (status >= 500) this.status5xx.set(endpoint, (this.status5xx.get(endpoint) ?? 0) + 1);
    if (status >= 300) this.statuses.set(`${endpoint} ${status}`, (this.statuses.get(`${endpoint} ${status}`) ?? 0) + 1);
  }

  summary(): Record<string, LatencySummary & { status_5xx: number; network_errors: number; statuses: Record<string, number> }> {
    const out: Record<string, LatencySummary & { status_5xx: number; network_errors: number; statuses: Record<string, number> }> = {};
    const names = new Set([...this.ms.keys(), ...this.networkErrors.keys()]);
    for (const name of names) {
      const s = [...(this.ms.get(name) ?? [])].sort((a, b) => a - b);
      const r = (x: number) => Math.round(x * 10) / 10;
      out[name] = {
        count: s.length,
        p50: r(percentile(s, 50)),
        p95: r(percentile(s, 95)),
        p99: r(percentile(s, 99)),
        max: r(s[s.length - 1] ?? NaN),
        status_5xx: this.status5xx.get(name) ?? 0,
        network_errors: this.networkErrors.get(name) ?? 0,
        statuses: Object.fromEntries([...this.statuses].filter(([k]) => k.startsWith(name + ' ')).map(([k, v]) => [k.slice(name.length + 1), v])),
      };
    }
    return out;
  }
}
