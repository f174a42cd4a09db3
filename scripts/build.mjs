#!/usr/bin/env node
// @ts-check
// `npm run build`: tsc into a staging directory, plus the one-file CLI and its code cache
// (scripts/bundle-cli.mjs), then into dist/ only the files whose bytes changed, each written
// beside its target and renamed over it.
//
// Why not `tsc -p tsconfig.json` straight into dist/: tsc truncates and rewrites every output
// file on every build, changed or not. A `sedna-ll` process that starts meanwhile (a test of
// another `npm test` or bench in the same checkout: they all build first) can import a module
// while it is empty or half written and dies with "does not provide an export named ..." (exit
// 1): measured, 2 of 64 CLI runs during back-to-back builds of unchanged sources. Here a build of
// unchanged sources leaves dist/ untouched, and a changed file is replaced in one rename (a
// process sees the old file or the new one, never a partial one). A process running while the
// sources really change can still load old and new modules side by side: do not test code while
// it is being changed. Outputs of deleted or renamed sources are removed afterwards (tsc would
// leave them, and a stale module could still be imported).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { BUNDLE, CACHE, bundleCli, bundleId, cacheHeader, cacheIntact, makeCodeCache } from './bundle-cli.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const staging = join(ROOT, '.build', `dist-staging-${process.pid}`);

/** @param {string} dir @returns {string[]} files under dir, recursively */
function files(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** @param {string} file @returns {Buffer | null} */
function readOrNull(file) {
  try {
    return readFileSync(file);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT') return null;
    throw e;
  }
}

let code = 0;
try {
  const r = spawnSync(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.json'), '--outDir', staging], { cwd: ROOT, stdio: 'inherit' });
  if (r.error) throw new Error(`cannot run ${TSC}: ${r.error.message}`);
  code = r.status ?? 1;
  if (code === 0) {
    // the one-file CLI bin/sedna-ll runs, and its code cache (scripts/bundle-cli.mjs); the cache
    // is made again only for a changed bundle or another Node (V8 caches differ run to run)
    const bundle = await bundleCli(ROOT);
    writeFileSync(join(staging, BUNDLE), bundle);
    const header = cacheHeader(/** @type {string} */ (bundleId(bundle)));
    const cache = readOrNull(join(DIST, CACHE));
    if (cache && cache.subarray(0, Buffer.byteLength(header)).toString() === header && cacheIntact(cache)) writeFileSync(join(staging, CACHE), cache);
    else makeCodeCache(join(staging, BUNDLE), join(staging, CACHE));
    let changed = 0;
    // the bundle and its cache last, then never older than dist/cli.js: bin/sedna-ll runs the
    // per-file modules instead of a bundle older than cli.js (what a bare tsc into dist/ leaves)
    const last = (/** @type {string} */ f) => (f.endsWith(BUNDLE) || f.endsWith(CACHE) ? 1 : 0);
    for (const src of files(staging).sort((a, b) => last(a) - last(b))) {
      const dst = join(DIST, relative(staging, src));
      const bytes = readFileSync(src);
      const old = readOrNull(dst);
      if (old && old.equals(bytes)) continue;
      mkdirSync(dirname(dst), { recursive: true });
      const tmp = `${dst}.tmp-${process.pid}`;
      try {
        writeFileSync(tmp, bytes);
        renameSync(tmp, dst);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw new Error(`${dst}: ${/** @type {Error} */ (e).message}`);
      }
      changed++;
    }
    // an unchanged bundle is not rewritten: after a bare tsc it stays older than cli.js
    const bundleFile = join(DIST, BUNDLE);
    const cliTime = statSync(join(DIST, 'cli.js')).mtimeMs;
    if (statSync(bundleFile).mtimeMs < cliTime) {
      // seconds with the fraction; never below cli.js's time, kept to the nanosecond
      const t = Math.max(Date.now(), Math.ceil(cliTime)) / 1000;
      utimesSync(bundleFile, t, t);
    }
    const built = new Set(files(staging).map((f) => relative(staging, f)));
    let removed = 0;
    for (const dst of readdirSync(DIST, { recursive: true, withFileTypes: true })) {
      if (!dst.isFile()) continue;
      const path = join(dst.parentPath, dst.name);
      if (built.has(relative(DIST, path))) continue;
      rmSync(path, { force: true });
      removed++;
    }
    if (removed && process.env.SEDNA_LL_BUILD_VERBOSE) process.stderr.write(`build: ${removed} stale file(s) removed from dist/\n`);
    if (changed && process.env.SEDNA_LL_BUILD_VERBOSE) process.stderr.write(`build: ${changed} file(s) of dist/ replaced\n`);
  }
} catch (e) {
  process.stderr.write(`build: ${/** @type {Error} */ (e).message}\n`);
  code = 1;
} finally {
  rmSync(staging, { recursive: true, force: true });
}
process.exit(code);
