// Run the real `sedna-ll` executable (bin/sedna-ll -> dist/cli.bundle.cjs, see README "Start-up") as a child process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'sedna-ll');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run sedna-ll synchronously; env.SEDNA_LL_HOME is set from opts.home when given. */
export function sedna(args: string[], opts: { home?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    input: opts.input,
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...(opts.home ? { SEDNA_LL_HOME: opts.home } : {}), ...opts.env },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 120_000,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout, stderr: r.stderr };
}

/** Start sedna-ll asynchronously (for kill -9 tests and servers). */
export function sednaSpawn(args: string[], opts: { home?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...(opts.home ? { SEDNA_LL_HOME: opts.home } : {}), ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'sedna-ll-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Parse JSON lines of a command's stdout. */
export function jsonLines<T = Record<string, unknown>>(s: string): T[] {
  return s
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

/** The command's own fields of a --json run record (the envelope time/device/command/exit left out). */
export function recordFields<T = Record<string, unknown>>(stdout: string): T {
  const { time: _t, device: _d, command: _c, exit: _e, ...fields } = JSON.parse(stdout) as Record<string, unknown>;
  return fields as T;
}
