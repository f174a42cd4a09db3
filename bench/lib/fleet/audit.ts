// The audit after the push phase, through the KB's admin API (so it reads whatever backend the
// replicas run on): every acknowledged id is stored exactly once and belongs to the device that
// pushed it, nothing is stored that no device sent, and the samples_new counter (what `kb train
// --when` reads) equals the rows inserted.
import type { PushTally } from './devices.js';

export interface AuditResult {
  ok: boolean;
  acked_ids: number;
  stored_rows: number;
  /** ids listed more than once by the admin listing */
  duplicates: number;
  /** acked ids not stored */
  missing: number;
  /** stored rows no device had acked (a batch committed whose answer was lost and never re-sent) */
  unacked_rows: number;
  /** stored under another device than the one that pushed them */
  wrong_owner: number;
  counter_samples_new: number;
  stats_samples: number;
  /** acked before the kill -9 and all present afterwards */
  acked_before_kill: number;
  lost_across_kill: number;
  problems: string[];
}

interface AdminSample {
  id: string;
  device_id: string | null;
  seq: number;
}

async function adminGet<T>(base: string, token: string, path: string): Promise<T> {
  const { request } = await import('undici');
  const res = await request(base + path, { headers: { authorization: `Bearer ${token}` }, headersTimeout: 300_000, bodyTimeout: 300_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`audit: GET ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

export async function auditPush(base: string, adminToken: string, tally: PushTally, ackedBeforeKill: Map<string, string[]> | null): Promise<AuditResult> {
  const owner = new Map<string, string>();
  for (const [dev, ids] of tally.acked) for (const id of ids) owner.set(id, dev);
  const seen = new Set<string>();
  let duplicates = 0;
  let unacked = 0;
  let wrongOwner = 0;
  let rows = 0;
  for (let after = 0; ; ) {
    const page = await adminGet<{ samples: AdminSample[]; next: number | null }>(base, adminToken, `/v1/admin/samples?limit=10000&after=${after}`);
    for (const s of page.samples) {
      rows++;
      if (seen.has(s.id)) duplicates++;
      seen.add(s.id);
      const dev = owner.get(s.id);
      if (dev === undefined) unacked++;
      else if (dev !== s.device_id) wrongOwner++;
    }
    if (page.next === null || page.samples.length === 0) break;
    after = page.next;
  }
  let missing = 0;
  for (const id of owner.keys()) if (!seen.has(id)) missing++;
  let beforeKill = 0;
  let lost = 0;
  for (const ids of ackedBeforeKill?.values() ?? []) {
    for (const id of ids) {
      beforeKill++;
      if (!seen.has(id)) lost++;
    }
  }
  const st = await adminGet<{ samples: number; counters: Record<string, number> }>(base, adminToken, '/v1/admin/stats');
  const counter = st.counters.samples_new ?? 0;
  const problems: string[] = [];
  if (duplicates) problems.push(`${duplicates} id(s) stored more than once`);
  if (missing) problems.push(`${missing} acknowledged id(s) not stored`);
  if (unacked) problems.push(`${unacked} stored row(s) no device had acknowledged`);
  if (wrongOwner) problems.push(`${wrongOwner} row(s) stored under another device`);
  if (lost) problems.push(`${lost} id(s) acknowledged before the kill -9 lost`);
  if (counter !== rows) problems.push(`counter samples_new ${counter} != ${rows} rows inserted`);
  if (st.samples !== rows) problems.push(`stats.samples ${st.samples} != ${rows} rows listed`);
  if (rows !== owner.size) problems.push(`${rows} rows stored for ${owner.size} distinct acknowledged ids`);
  if (tally.failures.length) problems.push(`${tally.failures.length} device(s) did not finish: ${tally.failures[0]}`);
  return {
    ok: problems.length === 0,
    acked_ids: owner.size,
    stored_rows: rows,
    duplicates,
    missing,
    unacked_rows: unacked,
    wrong_owner: wrongOwner,
    counter_samples_new: counter,
    stats_samples: st.samples,
    acked_before_kill: beforeKill,
    lost_across_kill: lost,
    problems,
  };
}
