// Run the real CLI as a child with the RSS probe preloaded: its exit code, stderr and peak RSS.
// Memory bounds are measured on a child process (its own peak), never inferred from timing.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { BIN, ROOT } from '../helpers/cli.js';

const PROBE = join(import.meta.dirname, 'rss-probe.mjs');

export interface BoundedRun {
  code: number;
  stdout: string;
  stderr: string;
  peakRssMb: number;
  fsWrite: number;
}

export function boundedRun(args: string[], o: { home?: string; env?: NodeJS.ProcessEnv; input?: Buffer | string } = {}): Promise<BoundedRun> {
  const out = join(tmpdir(), `sedna-ll-rss-${randomBytes(6).toString('hex')}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', PROBE, BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...(o.home ? { SEDNA_LL_HOME: o.home } : {}), ...o.env, SEDNA_LL_RSS_OUT: out },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.on('error', () => {}); // the child may exit before reading all input
    child.stdin.end(o.input);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      try {
        const r = JSON.parse(readFileSync(out, 'utf8')) as { maxRssKb: number; fsWrite: number };
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, peakRssMb: Math.round(r.maxRssKb / 1024), fsWrite: r.fsWrite });
      } catch (e) {
        reject(new Error(`no RSS report from the child (exit ${code}, ${signal}): ${stderr.slice(0, 300)} ${(e as Error).message}`));
      } finally {
        rmSync(out, { force: true });
      }
    });
  });
}
