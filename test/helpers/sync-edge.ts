// Edge-side fixtures for the sync tests and bench: an edge home enrolled with a test KB, a
// seeded outbox (real Outbox.logBatch into a real edge.db), id sets on both sides, and a test KB
// per describe (suiteKb).
import { after, before } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openEdgeDb } from '../../src/store/db.js';
import { homePaths, loadConfig, saveConfig, type EdgeConfig } from '../../src/store/home.js';
import { Outbox } from '../../src/store/outbox.js';
import { logRecord } from './log-record.js';
import { mulberry32 } from '../../src/random.js';
import { sedna, sednaSpawn, tempDir, type RunResult } from './cli.js';
import { startTestKb, type TestKb, type TestKbOptions } from './kb-server.js';

export interface Edge {
  home: string;
  cleanup: () => void;
}

/** `sedna-ll init` a fresh edge home pointing at kbUrl with the device token and KB key. */
export function makeEdge(kb: { url: string; deviceToken: string; publicKeyPem: string }, opts: { url?: string; deviceId?: string; maxOutboxMb?: number } = {}): Edge {
  const t = tempDir('sedna-ll-edge-');
  const home = join(t.dir, 'home');
  const tok = join(t.dir, 'token.txt');
  const key = join(t.dir, 'kb.pub');
  writeFileSync(tok, kb.deviceToken + '\n');
  writeFileSync(key, kb.publicKeyPem);
  const r = sedna(['init', '--device-id', opts.deviceId ?? 'edge-1', '--kb-url', opts.url ?? kb.url, '--token-file', tok, '--kb-key', key, '--max-outbox-mb', String(opts.maxOutboxMb ?? 4096)], { home });
  if (r.code !== 0) throw new Error(`init failed (${r.code}): ${r.stderr}`);
  return { home, cleanup: t.cleanup };
}

/** Change config.json as it is on disk (not checked: tests also write invalid configs, and repair them). */
export function editConfig(home: string, fn: (c: EdgeConfig) => void): void {
  const c = JSON.parse(readFileSync(homePaths(home).config, 'utf8')) as EdgeConfig;
  fn(c);
  saveConfig(home, c);
}

/**
 * Log n samples of `bytes` random payload bytes each into the edge outbox (real logBatch
 * transactions). Returns their ids in order.
 */
export function seedOutbox(home: string, n: number, bytes: number, opts: { seed?: number; task?: string; tasks?: string[]; chunk?: number } = {}): string[] {
  const paths = homePaths(home);
  const db = openEdgeDb(paths.db);
  try {
    const ob = new Outbox(db, paths, loadConfig(home));
    const rand = mulberry32(opts.seed ?? 1);
    const ids: string[] = [];
    const chunk = opts.chunk ?? 1000;
    for (let done = 0; done < n; ) {
      const m = Math.min(chunk, n - done);
      const recs = [];
      for (let i = 0; i < m; i++) {
        // float32 features in [0,1): realistic sensor-like payloads, not incompressible noise
        const f = new Float32Array(Math.floor(bytes / 4));
        for (let k = 0; k < f.length; k++) f[k] = Math.round(rand() * 1000) / 1000;
        const task = opts.tasks ? opts.tasks[(done + i) % opts.tasks.length] : (opts.task ?? 'global');
        recs.push(logRecord(Buffer.from(f.buffer), { task, attrs: { site: task }, predLabel: String((done + i) % 3), scores: [0.5, 0.3, 0.2], hardReasons: ['cross_entropy'], hardness: rand() }));
      }
      for (const r of ob.logBatch(recs)) ids.push(r.sampleId);
      done += m;
    }
    return ids;
  } finally {
    db.close();
  }
}

/** Attach labels to samples (feedback), so they are pending for upload. */
export function labelSamples(home: string, items: { id: string; label: string }[]): void {
  const paths = homePaths(home);
  const db = openEdgeDb(paths.db);
  try {
    new Outbox(db, paths, loadConfig(home)).setLabels(items);
  } finally {
    db.close();
  }
}

/** Edge sample ids by state. */
export function edgeIds(home: string): { pending: string[]; uploaded: string[]; labelsPending: number } {
  const db = openEdgeDb(homePaths(home).db);
  try {
    const rows = db.prepare('SELECT id, state FROM samples').all() as { id: string; state: string }[];
    const labelsPending = (db.prepare(`SELECT COUNT(*) AS n FROM samples WHERE label_state = 'pending'`).get() as { n: number }).n;
    return { pending: rows.filter((r) => r.state === 'pending').map((r) => r.id), uploaded: rows.filter((r) => r.state === 'uploaded').map((r) => r.id), labelsPending };
  } finally {
    db.close();
  }
}

/** Every sample the KB holds (admin API, paged), with its label. */
export async function kbSamples(kb: { url: string; adminToken: string }, device?: string): Promise<{ id: string; label: string | null; payload_kind: string; payload_bytes: number }[]> {
  const out: { id: string; label: string | null; payload_kind: string; payload_bytes: number }[] = [];
  let after = 0;
  for (;;) {
    const q = new URLSearchParams({ limit: '10000', after: String(after), ...(device ? { device } : {}) });
    const r = await fetch(`${kb.url}/v1/admin/samples?${q}`, { headers: { authorization: `Bearer ${kb.adminToken}` } });
    if (r.status !== 200) throw new Error(`admin samples: ${r.status} ${await r.text()}`);
    const j = (await r.json()) as { samples: { id: string; label: string | null; payload_kind: string; payload_bytes: number; seq: number }[]; next: number | null };
    out.push(...j.samples);
    if (j.next === null) return out;
    after = j.next;
  }
}

/**
 * Run sedna-ll asynchronously and collect its output. Use this (not the synchronous sedna())
 * whenever the run talks through an in-process fault proxy: spawnSync would block the event
 * loop that relays its bytes.
 */
export function sednaAsync(args: string[], opts: { home?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const p = sednaSpawn(args, opts);
  p.stdin!.end();
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`sedna-ll ${args.join(' ')}: no exit within ${opts.timeoutMs ?? 120_000} ms; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/**
 * A real KB (`kb serve` child, startTestKb) for the tests of the enclosing describe: started in
 * its before() hook, stopped in its after() hook. Returns a getter because the KB exists only
 * once before() has run.
 */
export function suiteKb(opts?: TestKbOptions): () => TestKb {
  let kb: TestKb | undefined;
  before(async () => {
    kb = await startTestKb(opts);
  });
  after(async () => {
    await kb?.stop();
  });
  return () => {
    if (!kb) throw new Error('suiteKb: the KB is started in before(); use it inside a test');
    return kb;
  };
}
