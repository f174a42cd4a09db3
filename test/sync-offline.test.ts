// A plain `sedna-ll sync` (no --retries, no --max-time) against a KB that is down must give up
// after its bounded retries with exit 3, release its lock, and lose nothing: cron depends on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKeys } from '../src/format/signature.js';
import { sedna, tempDir } from './helpers/cli.js';
import { seedOutbox } from './helpers/sync-edge.js';

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port; // nothing listens here any more: connections are refused
}

test('sync with default options against a dead KB ends with exit 3 and can run again', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const home = join(dir, 'edge');
    writeFileSync(join(dir, 'kb.pub'), generateSigningKeys().publicKey);
    writeFileSync(join(dir, 'token'), 'sdt_not-used-because-offline\n');
    const port = await closedPort();
    const init = sedna(['init', '--device-id', 'gw-1', '--kb-url', `http://127.0.0.1:${port}`, '--token-file', join(dir, 'token'), '--kb-key', join(dir, 'kb.pub')], { home });
    assert.equal(init.code, 0, init.stderr);
    seedOutbox(home, 3, 1000);
    const t0 = Date.now();
    const r = sedna(['sync', '--json'], { home, timeoutMs: 90_000 });
    assert.equal(r.code, 3, `exit ${r.code}: ${r.stderr}`);
    // one record line, and it counts only what the KB acknowledged: nothing went up
    const rec = JSON.parse(r.stdout);
    assert.equal(r.stdout.split('\n').length, 2);
    assert.deepEqual([rec.pushed, rec.acked, rec.bytes_up, rec.pending, rec.error.code], [0, 0, 0, 3, 'offline']);
    assert.ok(Date.now() - t0 < 60_000, 'bounded retries');
    // the lock was released: a second run is not refused with 6
    const again = sedna(['sync', '--pull-only', '--retries', '0'], { home, timeoutMs: 60_000 });
    assert.equal(again.code, 3, again.stderr);
    // --max-time reached while the KB never answered: still offline (3), not partial (4)
    const bounded = sedna(['sync', '--max-time', '2', '--retries', '50', '--json'], { home, timeoutMs: 60_000 });
    assert.equal(bounded.code, 3, bounded.stdout + bounded.stderr);
    assert.equal(JSON.parse(bounded.stdout).exit, 3);
  } finally {
    cleanup();
  }
});
