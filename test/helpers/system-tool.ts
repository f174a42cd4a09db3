// System programs some tests need (promtool from Debian's `prometheus`, `chromium`). .ci/run
// installs them, so in CI (CI=true) a missing one FAILS the test; on a developer machine the
// test is skipped with a message saying what to install.
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function findProgram(name: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** The program's path; null after t.skip() when missing locally; throws when missing in CI. */
export function requireProgram(t: TestContext, name: string, debianPackage: string): string | null {
  const p = findProgram(name);
  if (p) return p;
  const msg = `${name} not found (apt-get install -y ${debianPackage})`;
  if (process.env.CI === 'true') throw new Error(`${msg}: required when CI=true (.ci/run installs it)`);
  process.stderr.write(`SKIPPED: ${msg}\n`);
  t.skip(msg);
  return null;
}

/** `promtool check metrics` on a metrics page: its complaints ('' when it passes). */
export function promtoolProblems(promtool: string, text: string): string {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`.trim() || `exit ${r.status}`;
}
