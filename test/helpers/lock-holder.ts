// A second process that takes a lock and holds it until the test kills it (-9 where take-over
// is the point): a tsx script the test writes, which prints "held" once it holds the lock.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';

/** The file URL of a source module, for the import lines of a holder script. */
export const srcUrl = (f: string) => pathToFileURL(resolve('src', f)).href;

/** Run `script` (.mts) and wait until it printed "held"; it is SIGKILLed when the test ends. */
export async function startHolder(t: TestContext, script: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.setEncoding('utf8');
  while (!out.includes('held\n')) {
    const [chunk] = (await Promise.race([once(child.stdout!, 'data'), once(child, 'exit').then(() => [null])])) as [string | null];
    assert.ok(chunk !== null, `the lock holder exited early: ${out}`);
    out += chunk;
  }
  return child;
}
