// better-sqlite3's addon for a target, compiled against the target Node's headers (the addon
// uses V8's C++ API, so it is tied to one Node ABI: the node_modules build, made for the host's
// Node, cannot be reused). arm64 is cross-compiled with Debian's gcc-aarch64-linux-gnu. The
// result is cached by its inputs (better-sqlite3 version, Node version, compiler).
import { cpSync, existsSync, mkdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CACHE, NODE_VERSION, ROOT, log, run, sha256, type Target } from './common.js';
import { nodeDist } from './node-dist.js';

const require = createRequire(join(ROOT, 'package.json'));

/** npm's own node-gyp (npm ships it for exactly this: building addons at install time). */
function nodeGyp(): string {
  const p = join(run('npm', ['root', '-g']).trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!existsSync(p)) throw new Error(`node-gyp not found at ${p} (it comes with npm)`);
  return p;
}

export function sqliteAddon(t: Target): string {
  const pkgDir = dirname(realpathSync(require.resolve('better-sqlite3/package.json')));
  const version = (require('better-sqlite3/package.json') as { version: string }).version;
  const cc = `${t.toolPrefix}gcc`;
  const compiler = run(cc, ['--version']).split('\n')[0];
  const key = sha256(JSON.stringify({ version, node: NODE_VERSION, arch: t.arch, compiler })).slice(0, 16);
  const out = join(CACHE, `better-sqlite3-${t.arch}-${key}`, 'better_sqlite3.node');
  if (existsSync(out)) return out;

  const nodeDir = nodeDist(t);
  const work = join(CACHE, `better-sqlite3-${t.arch}-${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  cpSync(pkgDir, work, { recursive: true, filter: (src) => !src.startsWith(join(pkgDir, 'build')) && !src.startsWith(join(pkgDir, 'node_modules')) });
  log(`compiling better-sqlite3 ${version} for linux-${t.arch} against Node ${NODE_VERSION} headers (${compiler}); takes a few minutes`);
  const env = { ...process.env, ...(t.toolPrefix ? { CC: cc, CXX: `${t.toolPrefix}g++`, LINK: `${t.toolPrefix}g++`, AR: `${t.toolPrefix}ar` } : {}) };
  run(process.execPath, [nodeGyp(), 'rebuild', '--release', `--nodedir=${nodeDir}`, `--arch=${t.arch}`, '-j', '2'], { cwd: work, env });
  const built = join(work, 'build', 'Release', 'better_sqlite3.node');
  // debug symbols are most of the file; nothing at run time needs them
  run(`${t.toolPrefix}strip`, ['--strip-unneeded', built]);
  mkdirSync(dirname(out), { recursive: true });
  renameSync(built, out);
  rmSync(work, { recursive: true, force: true });
  return out;
}
