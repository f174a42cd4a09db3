// withRolloutLock (src/rollout/files.ts): what every install, activation, rollback, prune
// and sync runs inside. Real files, a real second process holding the lock, kill -9.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { homePaths } from '../src/store/home.js';
import { withRolloutLock } from '../src/rollout/files.js';
import { tempDir } from './helpers/cli.js';
import { srcUrl as src, startHolder } from './helpers/lock-holder.js';

test('withRolloutLock: locked while another process holds it; after that holder is killed -9 the lock is taken over and its leftovers swept', async (t) => {
  const tmp = tempDir('sedna-ll-rollout-lock-');
  t.after(() => tmp.cleanup());
  const paths = homePaths(join(tmp.dir, 'home'));
  for (const d of [paths.tmp, paths.kb, paths.models]) mkdirSync(d, { recursive: true });
  // a leftover of a process that is gone, and one of a live process (ours): only the first goes
  const deadPid = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  const deadModel = join(paths.models, `${'a'.repeat(64)}.onnx.tmp-${deadPid}-1`);
  const liveBundle = join(paths.tmp, `bundle-${process.pid}-00ff`);
  writeFileSync(deadModel, 'half');
  mkdirSync(liveBundle);

  // a second process takes the lock, leaves a half-built version dir as a killed install would,
  // says so, and keeps the lock until it is killed
  const holder = join(tmp.dir, 'holder.mts');
  writeFileSync(
    holder,
    `import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { homePaths } from ${JSON.stringify(src('store/home.ts'))};
import { withRolloutLock } from ${JSON.stringify(src('rollout/files.ts'))};
const paths = homePaths(${JSON.stringify(join(tmp.dir, 'home'))});
await withRolloutLock(paths, async () => {
  mkdirSync(join(paths.kb, '.tmp-7-' + process.pid + '-1'));
  process.stdout.write('held\\n');
  // held until killed (the timer keeps the process alive)
  await new Promise(() => setInterval(() => {}, 1 << 30));
});
`,
  );
  const child = await startHolder(t, holder);
  const childLeftover = join(paths.kb, `.tmp-7-${child.pid}-1`);
  assert.ok(existsSync(childLeftover));
  assert.ok(!existsSync(deadModel), 'the holder swept the dead leftover when it took the lock');

  let ran = false;
  await assert.rejects(
    withRolloutLock(paths, () => (ran = true)),
    (e: Error) => /locked/.test(e.message),
  );
  assert.equal(ran, false);
  assert.ok(existsSync(childLeftover), 'nothing is swept without the lock');

  child.kill('SIGKILL');
  await once(child, 'exit');
  const seen = await withRolloutLock(paths, () => ({ childLeftover: existsSync(childLeftover), live: existsSync(liveBundle) }));
  assert.deepEqual(seen, { childLeftover: false, live: true }, 'inside the lock: the killed holder\'s leftover is gone, a live process\'s stays');
  // released: the next caller gets it at once
  assert.equal(await withRolloutLock(paths, () => 'again'), 'again');
});
