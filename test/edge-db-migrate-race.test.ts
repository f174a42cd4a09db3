// Opening an outbox an upgrade left at an older schema from several processes at once (after an
// upgrade: `serve` and a cron `sync`): each migration step runs once, under the write lock, and
// every process opens the database. Before, each process read the version outside the lock and
// the later ones ran migration 6 again after the first's commit: "no such index:
// samples_state_time", exit 1 (2 of 3 processes, 4 runs in 5, on this 50k-row outbox).
// The race is not forced (nothing in migrate() to pause on): without the fix this test fails
// most runs; with it, every run passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MIGRATIONS } from '../src/store/schema.js';

const require = createRequire(import.meta.url);
const ROOT = resolve(import.meta.dirname, '..');

function openIn(path: string): Promise<{ code: number | null; out: string }> {
  const db = pathToFileURL(join(ROOT, 'dist', 'store', 'db.js')).href;
  const code = `const { openEdgeDb } = await import(${JSON.stringify(db)});
    const d = openEdgeDb(${JSON.stringify(path)}, { busyTimeoutMs: 120000 });
    process.stdout.write(String(d.pragma('user_version', { simple: true })));`;
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b) => (out += b));
    c.stderr.on('data', (b) => (out += b));
    c.on('error', rej);
    c.on('close', (code) => res({ code, out }));
  });
}

test('three processes opening a schema-5 outbox at once all open it at the current schema', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedna-migrate-race-'));
  try {
    const path = join(dir, 'edge.db');
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    for (const m of MIGRATIONS.slice(0, 5)) db.exec(m);
    db.pragma('user_version = 5');
    const ins = db.prepare(`INSERT INTO samples (id, task, payload_kind, payload_sha, payload_bytes, payload, hardness, created_at, state) VALUES (?, 't', 'f32', ?, 4, x'00000000', ?, ?, ?)`);
    db.transaction(() => {
      for (let i = 0; i < 50_000; i++) ins.run(`s${i}`, `h${i}`, (i % 7) / 7, 1000 + (i >> 8), i % 3 ? 'pending' : 'uploaded');
    })();
    db.close();

    const runs = await Promise.all([openIn(path), openIn(path), openIn(path)]);
    for (const r of runs) assert.deepEqual(r, { code: 0, out: String(MIGRATIONS.length) });
    const check = new Database(path, { readonly: true });
    const names = (check.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'samples'`).pluck().all() as string[]).sort();
    check.close();
    assert.ok(names.includes('samples_pending_time') && names.includes('samples_evict_done') && !names.includes('samples_state_time'), names.join(','));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
