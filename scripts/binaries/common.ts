// Shared bits of the single-file executable build: paths, the target table, hashing and a
// checked child-process runner.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** downloaded Node packages, compiled addons, bundles and blobs, keyed by input hash (git-ignored) */
export const CACHE = join(ROOT, '.build', 'cache');
/** finished binaries and .deb packages (git-ignored) */
export const RELEASE = join(ROOT, 'release');

/**
 * The Node runtime inside the binaries. 22 is a maintained LTS line (20 reached end of life in
 * April 2026); SEDNA_LL_NODE_VERSION picks another (>= 20.12: SEA assets and the code cache).
 */
export const NODE_VERSION = process.env.SEDNA_LL_NODE_VERSION ?? '22.23.5';

export type Arch = 'x64' | 'arm64';
export const ARCHES: Arch[] = ['x64', 'arm64'];

export interface Target {
  arch: Arch;
  /** Debian's name of the architecture */
  deb: 'amd64' | 'arm64';
  /** cross-compiler prefix for gcc/g++/strip ('' = the host's own) */
  toolPrefix: string;
  /** how to run one of its executables on this (x64) host */
  runner: string[];
}

export const TARGETS: Record<Arch, Target> = {
  x64: { arch: 'x64', deb: 'amd64', toolPrefix: '', runner: [] },
  arm64: { arch: 'arm64', deb: 'arm64', toolPrefix: 'aarch64-linux-gnu-', runner: ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'] },
};

/** The host tools a target's build needs (checked up front so a missing one is one clear line). */
export function requiredTools(t: Target): string[] {
  return t.arch === 'x64' ? ['gcc', 'g++', 'make', 'strip', 'python3', 'tar'] : [`${t.toolPrefix}gcc`, `${t.toolPrefix}g++`, `${t.toolPrefix}strip`, 'qemu-aarch64-static', 'make', 'python3', 'tar'];
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): string {
  return sha256(readFileSync(path));
}

/** Run a command, inherit stderr; throw naming the command when it fails. */
export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${String(r.stderr ?? '').slice(-4000)}${String(r.stdout ?? '').slice(-2000)}`);
  return String(r.stdout ?? '');
}

/** Write a file atomically (temp + rename), so an interrupted build never leaves a half file behind. */
export function writeAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

export function log(msg: string): void {
  process.stderr.write(`build:binaries: ${msg}\n`);
}

/**
 * The command-line entry of a build script: its arguments are architectures (none: all); runs
 * `build` and prints each output with its size, or one line and exit 1 (2 for a bad argument).
 */
export async function buildMain(name: string, build: (arches: Arch[]) => Promise<string[]>): Promise<void> {
  const args = process.argv.slice(2);
  const bad = args.filter((a) => !ARCHES.includes(a as Arch));
  if (bad.length) {
    process.stderr.write(`${name}: unknown architecture ${bad.join(', ')} (expected: ${ARCHES.join(', ')})\n`);
    process.exit(2);
  }
  try {
    for (const p of await build(args.length ? (args as Arch[]) : ARCHES)) process.stdout.write(`${p}\t${(statSync(p).size / 1e6).toFixed(1)} MB\n`);
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
