// The fleet bench's text report: one table per fleet size, baseline (embedded SQLite, one
// replica) next to the fleet (shared database, replicas behind HAProxy), and their ratios.
import { BATCH, BLOB, INDEX, PROTOCOL, PUSH, S3_GET, URL_EP } from './devices.js';
import type { ScenarioResult } from './run.js';

/** Median of every number across repeated runs of one scenario (first value for the rest). */
export function medianResult<T>(xs: T[]): T {
  const first = xs[0] as unknown;
  if (typeof first === 'number') {
    const s = (xs as unknown as number[]).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return first as T;
    return (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) as T;
  }
  if (typeof first === 'boolean') return xs.every((x) => x === true) as T;
  if (first && typeof first === 'object' && !Array.isArray(first)) {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(first)) o[k] = medianResult(xs.map((x) => (x as Record<string, unknown> | null)?.[k]));
    return o as T;
  }
  return first as T;
}

const SERVER_PREFIXES = ['replica-', 'haproxy', 'postgres', 'ceph', 'radosgw'];
export function serverCpu(cpu: Record<string, number>): number {
  return Object.entries(cpu)
    .filter(([k]) => SERVER_PREFIXES.some((p) => k.startsWith(p)))
    .reduce((a, [, v]) => a + (Number.isFinite(v) ? v : 0), 0);
}

const f = (x: number | undefined, d = 0) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const lat = (r: ScenarioResult, ep: string, phase: 'push' | 'stream' | 'presigned') => {
  const l = phase === 'push' ? r.push.latency[ep] : r.pull[phase]?.latency[ep];
  return l ? `${f(l.p50)}/${f(l.p95)}/${f(l.p99)}/${f(l.max)}` : '-';
};

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '-';
  return `${(a / b).toFixed(2)}x`;
}

export function renderTable(base: ScenarioResult | null, fleet: ScenarioResult | null): string {
  const cols = [base, fleet].filter((x): x is ScenarioResult => x !== null);
  if (cols.length === 0) return '';
  const name = (r: ScenarioResult) => `${r.backend} x${r.replicas}${r.load_balancer ? ' (haproxy)' : ''}`;
  const rows: [string, ...string[]][] = [];
  const row = (label: string, get: (r: ScenarioResult) => string, rat?: string) => rows.push([label, ...cols.map(get), ...(base && fleet ? [rat ?? ''] : [])]);
  row('push framing (negotiated)', (r) => String(r.push.framing));
  row('samples acked', (r) => String(r.push.samples));
  row('push samples/s', (r) => String(r.push.samples_per_s), ratio(fleet?.push.samples_per_s, base?.push.samples_per_s));
  row(`${PUSH} p50/p95/p99/max ms`, (r) => lat(r, PUSH, 'push'), ratio(fleet?.push.latency[PUSH]?.p99, base?.push.latency[PUSH]?.p99) + ' (p99)');
  row(`${BATCH} p50/p95/p99/max`, (r) => lat(r, BATCH, 'push'));
  row(`${PROTOCOL} p50/p95/p99/max`, (r) => lat(r, PROTOCOL, 'push'));
  row('5xx / network errors / retries', (r) => `${r.push.latency[PUSH]?.status_5xx ?? 0} / ${r.push.latency[PUSH]?.network_errors ?? 0} / ${r.push.retries}`);
  row('  non-2xx answers by status', (r) => Object.entries(r.push.latency[PUSH]?.statuses ?? {}).map(([k, v]) => `${k}: ${v}`).join(', ') || '-');
  if (cols.some((r) => r.push.lb)) row('  LB: 5xx / redispatched / conn. retries', (r) => (r.push.lb ? `${r.push.lb.status_5xx} / ${r.push.lb.redispatched} / ${r.push.lb.connection_retries}` : '-'));
  row('  5xx answered by the replicas (their logs)', (r) => (r.replica_5xx ? `${r.replica_5xx.count}${r.replica_5xx.count ? ': ' + Object.entries(r.replica_5xx.errors).map(([k, v]) => `${v}x ${k}`).join('; ').slice(0, 160) : ''}` : '-'));
  row('batches re-sent (lost ack)', (r) => String(r.push.resent_batches));
  row('kill -9 at / back after (s)', (r) => (r.push.kill ? `${r.push.kill.at_s} / ${r.push.kill.restarted_after_s}` : '-'));
  row('samples/s before the kill', (r) => (r.push.kill ? String(r.push.kill.samples_per_s_before) : '-'));
  row('restart CPU ms (not in the rows below)', (r) => (r.push.kill ? String(r.push.kill.restart_cpu_ms) : '-'));
  const groups = [...new Set(cols.flatMap((r) => Object.keys(r.push.cpu_ms_per_1000_samples)))].sort();
  for (const g of groups) row(`CPU ms / 1000 samples: ${g}`, (r) => f(r.push.cpu_ms_per_1000_samples[g], 1));
  const srv = (r: ScenarioResult) => (serverCpu(r.push.cpu_ms) / Math.max(1, r.push.samples)) * 1000;
  row('CPU ms / 1000 samples: all server processes', (r) => f(srv(r), 1), base && fleet ? ratio(srv(fleet), srv(base)) : undefined);
  row('database bytes / sample', (r) => String(r.database.bytes_per_sample));
  row('database rows/s, MB/s', (r) => `${r.database.rows_per_s}, ${r.database.mb_per_s}`);
  row('audit', (r) => (r.audit.ok ? `OK (${r.audit.stored_rows} rows = counter ${r.audit.counter_samples_new})` : `FAILED: ${r.audit.problems.join('; ')}`));
  row('  acked before kill, lost', (r) => `${r.audit.acked_before_kill}, ${r.audit.lost_across_kill}`);
  for (const mode of ['stream', 'presigned'] as const) {
    const p = (r: ScenarioResult) => r.pull[mode];
    if (!cols.some(p)) continue;
    row(`pull ${mode}: devices x MB, s`, (r) => (p(r) ? `${p(r)!.devices} x ${(p(r)!.model_bytes / 1e6).toFixed(1)}, ${p(r)!.seconds}` : '-'));
    row(`pull ${mode}: GB/s`, (r) => (p(r) ? f(p(r)!.gb_per_s, 2) : '-'));
    for (const ep of mode === 'stream' ? [INDEX, BLOB] : [URL_EP, S3_GET]) row(`  ${ep} p50/p95/p99/max`, (r) => lat(r, ep, mode));
    const pg = [...new Set(cols.flatMap((r) => Object.keys(p(r)?.cpu_ms_per_device ?? {})))].sort();
    for (const g of pg) row(`  CPU ms / device: ${g}`, (r) => f(p(r)?.cpu_ms_per_device[g], 1));
    row(`  bytes via replicas / object store`, (r) => (p(r) ? `${(p(r)!.bytes_via_replicas / 1e6).toFixed(0)} MB / ${(p(r)!.bytes_via_object_store / 1e6).toFixed(0)} MB` : '-'));
    row(`  5xx / retries / failed devices`, (r) => (p(r) ? `${Object.values(p(r)!.latency).reduce((a, l) => a + l.status_5xx, 0)} / ${p(r)!.retries} / ${p(r)!.failures}` : '-'));
  }
  if (cols.some((r) => r.pull.presigned_missing)) row('pull presigned', (r) => (r.pull.presigned_missing ? 'not run (blobs are files)' : 'see above'));
  const head: string[] = ['', ...cols.map(name), ...(base && fleet ? ['fleet / baseline'] : [])];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (c ?? '').padEnd(w[i])).join('  ').trimEnd()).join('\n');
}
