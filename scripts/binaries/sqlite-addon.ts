// better-sqlite3's addon for a target, compiled against the target Node's headers (the addon
// uses V8's C++ API, so it is tied to one Node ABI: the node_modules build, made for the host's
// Node, cannot be reused). arm64 is cross-compiled with Debian's gcc-aarch64-linux-gnu. The
// result is cached by its inputs (better-sqlite3 version, Node version, compiler).
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
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
  const nodeDir = nodeDist(t);
  if (existsSync(out) && builtForAbi(out, nodeDir)) return out;

  const work = join(CACHE, `better-sqlite3-${t.arch}-${key}.${process.pid}.tmp`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  cpSync(pkgDir, work, { recursive: true, filter: (src) => !src.startsWith(join(pkgDir, 'build')) && !src.startsWith(join(pkgDir, 'node_modules')) });
  log(`compiling better-sqlite3 ${version} for linux-${t.arch} against Node ${NODE_VERSION} headers (${compiler}); takes a few minutes`);
  // npm_config_nodedir (this machine's npmrc sets nodedir=/usr so installs build offline against
  // the host Node's headers) overrides node-gyp's --nodedir when run under `npm run`: name the
  // target's headers both ways, or the addon gets the host's ABI
  const env = { ...process.env, npm_config_nodedir: nodeDir, ...(t.toolPrefix ? { CC: cc, CXX: `${t.toolPrefix}g++`, LINK: `${t.toolPrefix}g++`, AR: `${t.toolPrefix}ar` } : {}) };
  run(process.execPath, [nodeGyp(), 'rebuild', '--release', `--nodedir=${nodeDir}`, `--arch=${t.arch}`, '-j', '2'], { cwd: work, env });
  const built = join(work, 'build', 'Release', 'better_sqlite3.node');
  // debug symbols are most of the file; nothing at run time needs them
  run(`${t.toolPrefix}strip`, ['--strip-unneeded', built]);
  if (!builtForAbi(built, nodeDir)) throw new Error(`better-sqlite3 for linux-${t.arch} was not built for Node ${NODE_VERSION}'s ABI (module version ${moduleVersion(nodeDir)}): check nodedir settings`);
  mkdirSync(dirname(out), { recursive: true });
  renameSync(built, out);
  rmSync(work, { recursive: true, force: true });
  return out;
}

/** NODE_MODULE_VERSION of the headers in `nodeDir` (the ABI an addon must be built for). */
function moduleVersion(nodeDir: string): string {
  const h = readFileSync(join(nodeDir, 'include', 'node', 'node_version.h'), 'utf8');
  const m = /#define NODE_MODULE_VERSION (\d+)/.exec(h);
  if (!m) throw new Error(`no NODE_MODULE_VERSION in ${nodeDir}/include/node/node_version.h`);
  return m[1];
}

/** An addon registers itself as node_register_module_v<ABI>: a build against other headers
 *  (a wrong nodedir) loads nowhere but fails only at run time on the gateway, so check here. */
function builtForAbi(file: string, nodeDir: string): boolean {
  return readFileSync(file).includes(`node_register_module_v${moduleVersion(nodeDir)}\0`);
}
