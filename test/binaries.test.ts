// The single-file executables (issue 12): each binary, run as a user would with nothing but
// the binary (no node_modules, no dist/), goes through --version, a KB of its own on loopback
// (kb init, device add, kb serve), init, task add, infer (two at once on a fresh native cache)
// and sync; kb train on worker threads (x64); serve surviving an in-place upgrade; the error
// for an unwritable cache. arm64's binary runs under qemu-user.
// The binaries are built (or found up to date) by scripts/build-binaries.ts; .ci/run builds them
// before `npm test`, so here that is a cache hit. Missing build tools skip the test locally, with
// the reason, and fail it under CI=true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { ROOT, tempDir, type RunResult } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { TARGETS, hasTool, requiredTools, runnerFor, type Arch } from '../scripts/binaries/common.js';
import { binaryPath } from '../scripts/binaries/sea.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function build(arch: Arch): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'build-binaries.ts'), arch], { cwd: ROOT, encoding: 'utf8', timeout: 3_600_000 });
  assert.equal(r.status, 0, `build:binaries ${arch} failed: ${r.stderr}`);
  return binaryPath(TARGETS[arch]);
}

/** A binary run: the runner (qemu for arm64), a private native cache, no inherited home. */
function runner(arch: Arch, bin: string, env: NodeJS.ProcessEnv) {
  const run = runnerFor(TARGETS[arch]);
  const [cmd, ...pre] = run.length ? [...run, bin] : [bin];
  const fullEnv = { ...process.env, ...env };
  return {
    run(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): RunResult {
      const r = spawnSync(cmd, [...pre, ...args], { input: opts.input, env: { ...fullEnv, ...opts.env }, encoding: 'utf8', timeout: 300_000 });
      if (r.error) throw r.error;
      return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
    },
    runAsync(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
      return new Promise((resolve, reject) => {
        const p = spawn(cmd, [...pre, ...args], { env: { ...fullEnv, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (c: Buffer) => (stdout += c));
        p.stderr.on('data', (c: Buffer) => (stderr += c));
        p.on('error', reject);
        p.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
      });
    },
    /** start a server; `ready` resolves with stdout's first match of `readyLine` */
    start(args: string[], readyLine: RegExp): { ready: Promise<RegExpExecArray>; stop: () => Promise<void> } {
      const p = spawn(cmd, [...pre, ...args], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr.on('data', (c: Buffer) => (err += c));
      const stop = () =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once('exit', () => resolve());
          p.kill('SIGTERM');
        });
      const ready = new Promise<RegExpExecArray>((resolve, reject) => {
        let out = '';
        p.stdout.on('data', (c: Buffer) => {
          out += c;
          const m = readyLine.exec(out);
          if (m) resolve(m);
        });
        p.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${err}`)));
      });
      return { ready, stop };
    },
  };
}

/** POST one sample to serve's /infer over its Unix socket */
function inferOverSocket(socketPath: string): Promise<{ label: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/infer', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as { label: string }) : reject(new Error(`serve answered ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ x: [0.1, 0.2, 3] }));
  });
}

const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);

for (const arch of ['x64', 'arm64'] as Arch[]) {
  // its own timeout: a stale binary is rebuilt first, and arm64 runs under emulation
  test(`binary sedna-ll-linux-${arch}: --version, kb init/serve, init, task add, infer, sync, kb train workers, upgrade in place; native cache`, { timeout: 3_600_000 }, async (t) => {
    const missing = requiredTools(TARGETS[arch]).filter((tool) => !hasTool(tool));
    if (missing.length) {
      const why = `cannot build or run the ${arch} binary here: missing ${missing.join(', ')} (see .ci/run's apt step)`;
      if (process.env.CI === 'true') assert.fail(why);
      t.diagnostic(why);
      t.skip(why);
      return;
    }
    const bin = build(arch);
    const tmp = tempDir('sedna-ll-bin-');
    try {
      const cache = join(tmp.dir, 'cache');
      // HOME too: nothing may land in the real ~/.cache or ~/.sedna-ll
      const b = runner(arch, bin, { SEDNA_LL_CACHE_DIR: cache, HOME: tmp.dir, SEDNA_LL_HOME: join(tmp.dir, 'home') });

      const v = b.run(['--version']);
      ok(v, '--version');
      assert.equal(v.stdout, `${VERSION}\n`);

      // a KB served by the binary itself (what sedna-ll-kb.service runs)
      const data = join(tmp.dir, 'kb');
      ok(b.run(['kb', 'init', '--data', data, '--json']), 'kb init');
      const dev = b.run(['kb', 'device', 'add', 'gw-bin', '--data', data, '--json', '--token-out', join(tmp.dir, 'token'), '--key-out', join(tmp.dir, 'kb.pub')]);
      ok(dev, 'kb device add');
      const input = join(tmp.dir, 'in.jsonl');
      // s1 is confident; s2 (all classes equal) is hard, so it is logged to the outbox for sync
      writeFileSync(input, '{"id":"s1","x":[0.1,0.2,3]}\n{"id":"s2","x":[1,1,1]}\n');
      const kbServer = b.start(['kb', 'serve', '--host', '127.0.0.1', '--port', '0', '--data', data], /"listening":"([^"]+)"/);
      const kb = { url: (await kbServer.ready)[1], stop: kbServer.stop };
      try {
        ok(b.run(['init', '--device-id', 'gw-bin', '--kb-url', kb.url, '--token-file', join(tmp.dir, 'token'), '--kb-key', join(tmp.dir, 'kb.pub')]), 'init');
        const model = writeIdentityModel(tmp.dir, 'ident', 3, { softmax: true });
        ok(b.run(['task', 'add', model, '--task', 'global', '--labels', 'a,b,c']), 'task add');

        // two infers at once on a fresh native cache: both unpack, both succeed
        const [i1, i2] = await Promise.all([b.runAsync(['infer', input]), b.runAsync(['infer', input])]);
        ok(i1, 'infer (1st of two at once)');
        ok(i2, 'infer (2nd of two at once)');
        const [s1, s2] = i1.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; label: string; scores: number[]; logged: boolean; sample_id?: string });
        assert.equal(s1.id, 's1');
        assert.equal(s1.label, 'c');
        assert.ok(Math.abs(s1.scores[2] - Math.exp(3) / (Math.exp(0.1) + Math.exp(0.2) + Math.exp(3))) < 1e-5, `softmax scores ${s1.scores}`);
        assert.equal(s2.logged, true);
        const unpacked = readdirSync(cache, { recursive: true }).map(String);
        assert.ok(unpacked.some((f) => f.endsWith('libonnxruntime.so.1')), `cache holds ${unpacked}`);
        assert.ok(!unpacked.some((f) => f.endsWith('.tmp')), `no temporary files left: ${unpacked}`);

        const s = b.run(['sync', '--json']);
        ok(s, 'sync');
        const samples = b.run(['kb', 'samples', 'ls', '--data', data, '--json']);
        ok(samples, 'kb samples ls');
        assert.ok(samples.stdout.includes(s2.sample_id!), `the KB holds the logged sample ${s2.sample_id}: ${samples.stdout}`);
      } finally {
        await kb.stop();
      }

      // kb train with several tasks on --threads 2: the training worker threads run the
      // embedded train-worker.cjs asset (x64 only: the same code, and slow under emulation)
      if (arch === 'x64') {
        const data2 = join(tmp.dir, 'kb-train');
        ok(b.run(['kb', 'init', '--data', data2, '--json']), 'kb init (train)');
        const rows: string[] = [];
        for (const site of ['a', 'b']) for (let i = 0; i < 60; i++) rows.push(JSON.stringify({ x: [0, 1, 2].map((j) => (j === i % 3 ? 2 : 0) + ((i * 7 + j) % 5) / 10), label: String(i % 3), attrs: { site } }));
        writeFileSync(join(tmp.dir, 'train.jsonl'), rows.join('\n') + '\n');
        ok(b.run(['kb', 'samples', 'import', join(tmp.dir, 'train.jsonl'), '--data', data2]), 'kb samples import');
        const tr = b.run(['kb', 'train', '--data', data2, '--attr-keys', 'site', '--threads', '2', '--epochs', '2', '--json']);
        ok(tr, 'kb train --threads 2');
        assert.deepEqual((JSON.parse(tr.stdout) as { tasks: { task: string }[] }).tasks.map((x) => x.task).sort(), ['a', 'b', 'global']);
      }

      // upgrade in place: serve runs from an installed copy; a new file renamed over it (what
      // install(1) and dpkg do) leaves the running server answering, and the path runs the new one
      const installed = join(tmp.dir, 'bin', 'sedna-ll');
      mkdirSync(join(tmp.dir, 'bin'));
      copyFileSync(bin, installed);
      const sock = join(tmp.dir, 'serve.sock');
      const srv = runner(arch, installed, { SEDNA_LL_CACHE_DIR: cache, HOME: tmp.dir, SEDNA_LL_HOME: join(tmp.dir, 'home') }).start(['serve', '--socket', sock], /"listening"/);
      try {
        await srv.ready;
        assert.equal((await inferOverSocket(sock)).label, 'c');
        copyFileSync(bin, `${installed}.new`);
        renameSync(`${installed}.new`, installed);
        assert.equal((await inferOverSocket(sock)).label, 'c', 'the running serve keeps answering after the binary was replaced');
        ok(runner(arch, installed, {}).run(['--version']), 'the replaced binary runs');
      } finally {
        await srv.stop();
      }

      // an unwritable cache directory: one line naming it and the way out, exit 1
      const blocker = join(tmp.dir, 'not-a-dir');
      writeFileSync(blocker, '');
      const ro = b.run(['infer', input], { env: { SEDNA_LL_CACHE_DIR: join(blocker, 'cache') } });
      assert.equal(ro.code, 1, ro.stderr);
      assert.match(ro.stderr, /^sedna-ll: .*cannot unpack the native libraries into .*not-a-dir.*: ENOTDIR; set SEDNA_LL_CACHE_DIR to a writable directory$/m);
      assert.equal(ro.stderr.trim().split('\n').length, 1, ro.stderr);
    } finally {
      tmp.cleanup();
    }
  });
}

