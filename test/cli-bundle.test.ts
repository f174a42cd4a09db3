// The one-file CLI (dist/cli.bundle.cjs, scripts/bundle-cli.mjs) that bin/sedna-ll runs with
// its build-time V8 code cache: it answers as the per-file dist/cli.js does, its cache is used
// only with the bundle it was made for, wherever the package lies (another build's, a damaged
// one or none: the command still runs), stack traces name the bundle,
// bin/sedna-ll falls back to dist/cli.js without a bundle or, in a checkout, with one older than
// dist/cli.js (a bare tsc into a built dist/), the push's reader thread, started
// from the bundle, runs dist/sync/frames-worker.js, and every package left outside the bundle
// loads through require() (the bundle's import() is require()).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sedna, tempDir } from './helpers/cli.js';
import { edgeIds, kbSamples, makeEdge, seedOutbox } from './helpers/sync-edge.js';
import { startTestKb } from './helpers/kb-server.js';

const DEBUG = { SEDNA_LL_DEBUG_CODE_CACHE: '1' };

/** `node <bin> args` with the code cache reported on stderr */
function run(bin: string, args: string[], home: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, SEDNA_LL_HOME: home, ...DEBUG, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('bin/sedna-ll runs the bundle from its code cache and answers as dist/cli.js does', () => {
  const tmp = tempDir();
  try {
    const home = join(tmp.dir, 'home');
    assert.equal(sedna(['init', '--device-id', 'gw-b'], { home }).code, 0);
    for (const args of [['status'], ['status', '--json'], ['config', 'get', 'upload.compress'], ['kb', 'device', '--help'], ['sync', '--batch-size', 'x']]) {
      const viaBin = run(join(ROOT, 'bin', 'sedna-ll'), args, home);
      assert.match(viaBin.stderr, /^sedna-ll: code cache accepted\n/, args.join(' '));
      const perFile = run(join(ROOT, 'dist', 'cli.js'), args, home);
      const norm = (s: string) => s.replace(/"(time|duration_ms)":[^,}]*/g, '"$1":_');
      assert.deepEqual({ code: viaBin.code, stdout: norm(viaBin.stdout), stderr: viaBin.stderr.replace(/^sedna-ll: code cache accepted\n/, '') }, { code: perFile.code, stdout: norm(perFile.stdout), stderr: perFile.stderr }, args.join(' '));
    }
  } finally {
    tmp.cleanup();
  }
});

test('the cache works in a copy of the package; one of another build or a damaged one is not used; stack traces name the bundle; without a bundle bin/sedna-ll runs dist/cli.js', () => {
  const tmp = tempDir();
  try {
    // a copy of the package (bin, dist, package.json; node_modules shared) to tamper with
    const pkg = join(tmp.dir, 'pkg');
    // (no tsconfig.json: a package, whose bundle runs whatever the times the copy gave its files)
    for (const f of ['bin', 'dist', 'package.json']) cpSync(join(ROOT, f), join(pkg, f), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
    const bin = join(pkg, 'bin', 'sedna-ll');
    const home = join(tmp.dir, 'home');
    assert.equal(sedna(['init', '--device-id', 'gw-c'], { home }).code, 0);
    const expected = sedna(['status'], { home }).stdout;
    const status = (want: string) => {
      const r = run(bin, ['status'], home);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, expected);
      assert.equal(r.stderr, want ? `sedna-ll: code cache ${want}\n` : '');
    };
    // the cache made by the build is valid for a copy elsewhere (the npm package is built in one
    // place and installed in another)
    status('accepted');
    const bundle = join(pkg, 'dist', 'cli.bundle.cjs');
    const cacheFile = `${bundle}.cache`;
    // an error's stack names the bundle by the one name it is compiled under, not the path of
    // the build that made the cache (Node 20 keeps that from the cache)
    const bad = run(bin, ['status'], join(tmp.dir, 'no-such-home'), { SEDNA_LL_DEBUG: '1' });
    assert.equal(bad.code, 2, bad.stderr);
    assert.ok(bad.stderr.includes('at loadConfig (sedna-ll/dist/cli.bundle.cjs:'), bad.stderr);
    assert.ok(!bad.stderr.includes(join(ROOT, 'dist')) && !bad.stderr.includes('.build'), bad.stderr);
    const cache = readFileSync(cacheFile);
    const nl = cache.indexOf(10);
    const header = JSON.parse(cache.toString('utf8', 0, nl)) as { bundle: string };
    // the header names another bundle: V8 would accept these bytes for any source of this length
    writeFileSync(cacheFile, Buffer.concat([Buffer.from(`${JSON.stringify({ ...header, bundle: '0'.repeat(32) })}\n`), cache.subarray(nl + 1)]));
    status('of another build');
    // the right header, damaged bytes: their sha256 (line 2) does not match, V8 never sees them
    writeFileSync(cacheFile, Buffer.concat([cache.subarray(0, nl + 1 + 65), Buffer.alloc(cache.length - nl - 1 - 65, 7)]));
    status('damaged');
    // bytes that match their sha256 but are no V8 cache: V8 rejects them and compiles the source
    const junk = Buffer.alloc(cache.length - nl - 1 - 65, 7);
    writeFileSync(cacheFile, Buffer.concat([cache.subarray(0, nl + 1), Buffer.from(`${createHash('sha256').update(junk).digest('hex')}\n`), junk]));
    status('rejected');
    writeFileSync(cacheFile, 'junk');
    status('of another build');
    rmSync(cacheFile);
    status('none');
    rmSync(bundle);
    status('');
  } finally {
    tmp.cleanup();
  }
});

test('a bare tsc into a built dist/ of a checkout: bin/sedna-ll runs what tsc compiled, not the older bundle; a package (no tsconfig.json) runs its bundle', () => {
  const tmp = tempDir();
  try {
    // a built package (times kept) with its sources, one of them changed after the build
    const pkg = join(tmp.dir, 'pkg');
    for (const f of ['bin', 'dist', 'package.json', 'tsconfig.json', 'src']) cpSync(join(ROOT, f), join(pkg, f), { recursive: true, preserveTimestamps: true });
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
    const bin = join(pkg, 'bin', 'sedna-ll');
    const home = join(tmp.dir, 'home');
    const help = () => run(bin, ['status', '--help'], home);
    const built = help();
    assert.equal(built.code, 0, built.stderr);
    assert.match(built.stderr, /^sedna-ll: code cache accepted\n/);
    const statusTs = join(pkg, 'src', 'commands', 'status.ts');
    const marker = 'status as compiled by a bare tsc';
    const text = readFileSync(statusTs, 'utf8');
    assert.ok(text.includes(".description('device id, "), 'the status command\'s description moved: update this test');
    writeFileSync(statusTs, text.replace(".description('device id, ", `.description('${marker}: device id, `));
    // the developer's `tsc -p tsconfig.json` into the built dist/ (the bundle stays as built)
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(pkg, 'tsconfig.json')], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
    const after = help();
    assert.equal(after.code, 0, after.stderr);
    assert.ok(after.stdout.includes(marker), `the stale bundle ran, not what tsc compiled:\n${after.stdout}`);
    assert.equal(after.stderr, 'sedna-ll: dist/cli.bundle.cjs is older than dist/cli.js (tsc without npm run build?): running the per-file dist/\n');
    // a package (npm's tarball: no tsconfig.json, no sources) runs its bundle whatever the times:
    // npm unpacks cli.js a few ms after the bundle, and nothing compiles into a package's dist/
    rmSync(join(pkg, 'tsconfig.json'));
    rmSync(join(pkg, 'src'), { recursive: true });
    const packed = help();
    assert.equal(packed.code, 0, packed.stderr);
    assert.match(packed.stderr, /^sedna-ll: code cache accepted\n/);
    assert.ok(!packed.stdout.includes(marker));
  } finally {
    tmp.cleanup();
  }
});

test("sync from the bundle starts the push's reader thread from dist/sync/frames-worker.js", async () => {
  const kb = await startTestKb();
  const tmp = tempDir();
  try {
    const e = makeEdge(kb);
    try {
      const ids = seedOutbox(e.home, 40, 3072);
      // a preload that reports every worker thread the process starts once it is ready (its first
      // message) or failed; a push ends its reader thread as soon as the push is done, maybe
      // before it is ready (the main thread reads until then), so terminate() waits for either
      const probe = join(tmp.dir, 'probe.cjs');
      writeFileSync(
        probe,
        [
          "const wt = require('node:worker_threads');",
          'wt.Worker = class extends wt.Worker {',
          '  constructor(file, opts) {',
          '    super(file, opts);',
          "    this.settled = new Promise((resolve) => {",
          "      this.once('message', () => resolve(process.stderr.write('worker ready: ' + file + '\\n')));",
          "      this.once('error', (e) => resolve(process.stderr.write('worker error: ' + file + ': ' + e.message + '\\n')));",
          "      this.once('exit', resolve);",
          '    });',
          '  }',
          '  terminate() { return this.settled.then(() => super.terminate()); }',
          '};',
          '',
        ].join('\n'),
      );
      const r = sedna(['sync', '--push-only'], { home: e.home, env: { ...DEBUG, SEDNA_LL_PUSH_READ_THREAD: 'on', NODE_OPTIONS: `--require ${probe}` } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^sedna-ll: code cache accepted\n/);
      assert.match(r.stderr, new RegExp(`worker ready: file://${join(ROOT, 'dist', 'sync', 'frames-worker.js')}\\n`));
      assert.doesNotMatch(r.stderr, /worker error|read thread/);
      assert.deepEqual(edgeIds(e.home).pending, []);
      assert.deepEqual((await kbSamples(kb)).map((s) => s.id).sort(), [...ids].sort());
    } finally {
      e.cleanup();
    }
  } finally {
    tmp.cleanup();
    await kb.stop();
  }
});

test('every package the bundle leaves outside loads through require() without require(esm) (Node 20.18 has none)', () => {
  const bundle = join(ROOT, 'dist', 'cli.bundle.cjs');
  const text = readFileSync(bundle, 'utf8');
  const packages = [...new Set([...text.matchAll(/\brequire\("([^".][^"]*)"\)/g)].map((m) => m[1]).filter((p) => !p.startsWith('node:')))];
  // the natives at least: a bundle without them would have bundled what must stay outside
  for (const p of ['better-sqlite3', 'onnxruntime-node']) assert.ok(packages.includes(p), `${p} not required by the bundle: ${packages.join(', ')}`);
  const r = spawnSync(process.execPath, ['--no-experimental-require-module', '-e', `const r = require('node:module').createRequire(${JSON.stringify(bundle)}); for (const p of ${JSON.stringify(packages)}) r(p);`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `an external package is ES-only (bundle it: BUNDLED in scripts/bundle-cli.mjs): ${r.stderr}`);
});

test('the build keeps a code cache only when its data matches the sha256 on its line 2 (a damaged one is made again)', async () => {
  const { CACHE, cacheIntact } = (await import(join(ROOT, 'scripts', 'bundle-cli.mjs'))) as { CACHE: string; cacheIntact: (b: Buffer) => boolean };
  const good = readFileSync(join(ROOT, 'dist', CACHE));
  assert.equal(cacheIntact(good), true, 'the cache npm run build made');
  const flipped = Buffer.from(good);
  flipped[flipped.length - 100] ^= 0x10;
  assert.equal(cacheIntact(flipped), false, 'one bit flipped in the data');
  assert.equal(cacheIntact(good.subarray(0, good.length - 1)), false, 'truncated');
  assert.equal(cacheIntact(Buffer.from('{"bundle":"x"}\nnot-a-sum\n')), false, 'no sum line');
  assert.equal(cacheIntact(Buffer.alloc(0)), false, 'empty');
});
