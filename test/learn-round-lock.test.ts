// A learning round locks itself (src/learn/round.ts runRound -> store.trainLock): a round while
// another process holds the KB's training lock fails as locked and changes nothing; once that
// holder is killed with -9 the next round takes the lock over. Real SQLite KB, real processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initKb } from '../src/kb/init.js';
import { openKbStore } from '../src/kb/open.js';
import { runRound } from '../src/learn/round.js';
import { tempDir } from './helpers/cli.js';
import { srcUrl as src, startHolder } from './helpers/lock-holder.js';

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
  const child = await startHolder(t, holder);

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
