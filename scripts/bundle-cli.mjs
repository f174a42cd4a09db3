// @ts-check
// The CLI as one CommonJS file, dist/cli.bundle.cjs, and its V8 code cache (what bin/sedna-ll
// runs; `npm run build` makes both, scripts/build.mjs). Why: every command used to import ~40-90
// ES modules of dist/ one by one (resolve, read, compile each) and require commander from
// node_modules, ~70 ms over `node -e 0` for `status` or a `sync` with nothing to do, which cron
// pays every few minutes. One script compiled from a code cache skips the resolution and most of
// the compiling. Measured (interleaved, 15 runs, CPU ms user+sys, load ~2-3): status 157 -> 115,
// sync 166 -> 131 (node -e 0: 75). Bundling alone, without the cache: 157 -> 131 and 166 -> 144.
//
// What the bundle holds and what it leaves outside:
// - our sources and commander and chalk (pure JS: covered by the cache). Every other package
//   stays external and is require()d where the sources import it lazily (onnxruntime-node,
//   better-sqlite3: native; fastify, tar, pg, undici, ajv, prom-client, pngjs, jpeg-js: loaded
//   only by the commands that need them, from node_modules as before).
// - import() becomes require() (esbuild's supported['dynamic-import'] = false), as in the
//   single-file binaries: a vm.Script compiled from a code cache has no dynamic-import callback
//   on Node 20. So every external must be loadable by require() on Node 20.18 (all are CommonJS;
//   chalk, the one ES-only package, is bundled).
// - worker threads start from the per-file dist/ modules beside the bundle (dist/sync/
//   frames-worker.js, dist/learn/train-worker.js): `import.meta.url` in a source becomes the URL
//   of that source's own dist/ file, so `new URL('./frames-worker.js', import.meta.url)` names
//   the same file as it does in dist/. The WAL checkpoint worker is eval'd code that requires
//   better-sqlite3 by the path require.resolve gives (the bundle's require: the same package).
// - the version is fixed at build time (src/sea/version.ts), as in the binaries.
//
// The first line names the bundle by a hash of the rest; the cache file starts with a JSON line
// holding that hash and the Node that made it, so bin/sedna-ll never pairs a bundle with the
// cache of another build (V8 itself only checks the source's length, its version and flags);
// its second line is the sha256 of the cache data, so a damaged cache is not handed to V8, whose
// deserializer trusts the bytes (SIGSEGV/SIGTRAP).
// The script is compiled under one name everywhere, "sedna-ll/dist/cli.bundle.cjs" (what stack
// traces show): Node 20's V8 keeps the name a cache was made under, whatever name the script
// is compiled with later, so the real path would be the build's, wrong once the package is
// installed elsewhere; a fixed name keeps the cache valid wherever the package is unpacked.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CREATE_REQUIRE_LINE, cjsBundleOptions, failOnWarnings } from './esbuild-cjs.mjs';

export const BUNDLE = 'cli.bundle.cjs';
export const CACHE = `${BUNDLE}.cache`;
const HEADER = '// sedna-ll cli bundle ';
/** packages bundled (pure JS, on every command's path or ES-only); every other one stays external */
const BUNDLED = new Set(['commander', 'chalk']);

/**
 * The bundle's id (from its first line), or null when `text` is not a bundle of ours.
 * @param {string} text
 * @returns {string | null}
 */
export function bundleId(text) {
  if (!text.startsWith(HEADER)) return null;
  const end = text.indexOf('\n');
  return end < 0 ? null : text.slice(HEADER.length, end);
}

/**
 * The header line a code cache made by this Node for bundle `id` starts with.
 * @param {string} id
 */
export function cacheHeader(id) {
  // sum: the line after the header holds the data's sha256 (older caches without it are made again)
  return `${JSON.stringify({ bundle: id, node: process.version, arch: process.arch, sum: 'sha256' })}\n`;
}

/**
 * Does a code cache file's data match the sha256 on its second line? (bin/sedna-ll checks the
 * same before V8 sees the data; the build makes a damaged cache again instead of keeping it.)
 * @param {Buffer} bytes the cache file
 */
export function cacheIntact(bytes) {
  const nl = bytes.indexOf(10);
  const end = nl + 65;
  return nl >= 0 && bytes[end] === 10 && createHash('sha256').update(bytes.subarray(end + 1)).digest('hex') === bytes.toString('latin1', nl + 1, end);
}

/**
 * Bundle src/cli.ts; returns the bundle's text (header line first).
 * @param {string} root the repository
 */
export async function bundleCli(root) {
  const { build } = await import('esbuild');
  const src = join(root, 'src');
  const version = /** @type {{ version: string }} */ (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))).version;
  /** @type {import('esbuild').Plugin} */
  const plugin = {
    name: 'sedna-ll-dist-bundle',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith('node:')) return { external: true };
        const pkg = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0];
        // only imports from our sources decide; bundled packages' own imports stay bundled
        if (!args.importer.startsWith(src)) return undefined;
        return BUNDLED.has(pkg) ? undefined : { external: true };
      });
      b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
        const path = /[\\/]src[\\/]version\.ts$/.test(args.path) ? join(src, 'sea', 'version.ts') : args.path;
        // the module's own file in dist/, relative to the bundle (which sits at dist/'s root)
        const distFile = relative(src, args.path).replace(/\.ts$/, '.js').split(/[\\/]/).join('/');
        let text = readFileSync(path, 'utf8');
        // require() of packages goes through the bundle's require (esbuild bundles or keeps it)
        text = text.replace(CREATE_REQUIRE_LINE, '');
        text = text.replace(/\bimport\.meta\.url\b/g, `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(distFile)})).href`);
        if (/\bimport\.meta\b/.test(text.replace(/\/\/.*$/gm, ''))) throw new Error(`${path}: uses import.meta beyond import.meta.url, which the CommonJS bundle cannot give it (scripts/bundle-cli.mjs)`);
        return { contents: text, loader: 'ts' };
      });
    },
  };
  // not minified: each module's code follows a `// src/<path>.ts` comment in stack traces
  const r = await build({ ...cjsBundleOptions(version), entryPoints: [join(src, 'cli.ts')], plugins: [plugin] });
  failOnWarnings(r, 'src/cli.ts', 'in the bundle');
  const body = r.outputFiles[0].text;
  return `${HEADER}${createHash('sha256').update(body).digest('hex').slice(0, 32)}\n${body}`;
}

/**
 * Make the code cache of `bundleFile` into `cacheFile`: a child Node compiles the bundle the way
 * bin/sedna-ll does, runs `sedna-ll --help` with it (which compiles commander's parsing and every command's
 * registration; a cache made before running would hold little more than the top level, as
 * esbuild wraps each module in a function V8 compiles lazily) and writes the cache
 * (scripts/code-cache-warmup.cjs).
 * @param {string} bundleFile
 * @param {string} cacheFile
 */
export function makeCodeCache(bundleFile, cacheFile) {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, 'code-cache-warmup.cjs'), bundleFile, cacheFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (r.status !== 0) throw new Error(`making the code cache of ${bundleFile} failed (exit ${r.status}): ${r.stderr}`);
}
