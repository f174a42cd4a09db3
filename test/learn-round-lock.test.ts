// A learning round locks itself (src/learn/round.ts runRound -> store.trainLock): a round while
// another process holds the KB's training lock fails as locked and changes nothing; once that
// holder is killed with -9 the next round takes the lock over. Real SQLite KB, real processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { initKb } from '../src/kb/init.js';
import { openKbStore } from '../src/kb/open.js';
import { runRound } from '../src/learn/round.js';
import { tempDir } from './helpers/cli.js';

const src = (f: string) => pathToFileURL(resolve('src', f)).href;

test('runRound holds the training lock: locked while another process holds it, taken over after that holder is killed -9', async (t) => {
  const tmp = tempDir('sedna-ll-round-lock-');
  const dir = join(tmp.dir, 'kb');
  await initKb(dir);
  const store = await openKbStore(dir);
  t.after(async () => {
    await store.close();
    tmp.cleanup();
  });

  // a second process takes the lock, says so, and keeps it until it is killed
  const holder = join(tmp.dir, 'holder.mts');
  writeFileSync(
    holder,
    `import { openKbStore } from ${JSON.stringify(src('kb/open.ts'))};
const store = await openKbStore(${JSON.stringify(dir)});
await store.trainLock();
process.stdout.write('held\\n');
setInterval(() => {}, 1 << 30);
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', holder], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8');
  while (!out.includes('held\n')) {
    const [chunk] = (await Promise.race([once(child.stdout, 'data'), once(child, 'exit').then(() => [null])])) as [string | null];
    assert.ok(chunk !== null, `the lock holder exited early: ${out}`);
    out += chunk;
  }

  const before = await store.getMeta('learn.round');
  await assert.rejects(runRound(store, { seed: 1 }), (e: Error) => /train/.test(e.message) && /running|locked|lock/.test(e.message));
  assert.equal(await store.getMeta('learn.round'), before, 'a locked round changed nothing');

  child.kill('SIGKILL');
  await once(child, 'exit');
  const report = await runRound(store, { seed: 1 });
  assert.equal(report.round, 1, 'the stale lock was taken over');
  // and released when the round ended: the next one runs too
  assert.equal((await runRound(store, { seed: 1 })).round, 1);
});
