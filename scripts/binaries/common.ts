// Shared bits of the single-file executable build: paths, the target table, hashing and a
// checked child-process runner.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
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
  /** how to run one of its executables on this (x64) host (runnerFor adds what it needs) */
  runner: string[];
}

export const TARGETS: Record<Arch, Target> = {
  x64: { arch: 'x64', deb: 'amd64', toolPrefix: '', runner: [] },
  arm64: { arch: 'arm64', deb: 'arm64', toolPrefix: 'aarch64-linux-gnu-', runner: ['qemu-aarch64-static'] },
};

/** Debian's aarch64 libraries (gcc-aarch64-linux-gnu): the ELF interpreter and libc for qemu */
const AARCH64_SYSROOT = '/usr/aarch64-linux-gnu';

/**
 * An aarch64 /proc/cpuinfo (two Cortex-A72 cores, as on a Raspberry Pi 4). qemu-user (Debian
 * 12's 7.2) hands the guest the HOST's /proc/cpuinfo, x86 text; onnxruntime's cpuinfo library
 * finds no ARM core in it and, on hosts whose sysfs lists cluster_cpus_list and shared caches
 * (seen on an AMD EPYC host), dereferences NULL while loading: every binary command that loads
 * onnxruntime died with SIGSEGV under qemu, though the binary is fine on a real arm64 gateway.
 */
const AARCH64_CPUINFO = [0, 1]
  .map((n) => `processor\t: ${n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n`)
  .join('');

/**
 * The qemu -L prefix for arm64: qemu-user opens <prefix>/<path> instead of an absolute <path>
 * whenever that file exists, so a prefix holding Debian's aarch64 sysroot (symlinked) plus
 * proc/cpuinfo gives the guest an ARM cpuinfo and the host's files for everything else. Made once
 * under the build cache, complete or not at all (built aside, then renamed into place).
 */
export function aarch64Prefix(): string {
  const dir = join(CACHE, 'qemu-aarch64-prefix-1');
  if (existsSync(dir)) return dir;
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(`${dir}.tmp-`);
  for (const e of readdirSync(AARCH64_SYSROOT)) symlinkSync(join(AARCH64_SYSROOT, e), join(tmp, e));
  mkdirSync(join(tmp, 'proc'));
  writeFileSync(join(tmp, 'proc', 'cpuinfo'), AARCH64_CPUINFO);
  try {
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(dir)) throw e; // another build made it first: use that one
  }
  return dir;
}

/** The command prefix that runs one of the target's executables on this (x64) host. */
export function runnerFor(t: Target): string[] {
  return t.arch === 'arm64' ? [...t.runner, '-L', aarch64Prefix()] : t.runner;
}

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
