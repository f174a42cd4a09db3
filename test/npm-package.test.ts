// The npm package (issue 12 part 2): `npm pack` of a copy of the sources builds dist/ in its
// prepack (nothing built beforehand; `npm run build`: the per-file modules, the one-file CLI and
// its code cache), the tarball holds bin/, dist/, README.md, LICENSE and package.json only, and
// `npm install -g` of it into a temporary prefix (the npm registry or its cache as the only
// source, onnxruntime-node's CUDA download skipped as the README says) gives a `sedna-ll` that
// answers --help and runs init, task add and infer, from the one-file CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 1_800_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `npm ${args.join(' ')}: exit ${r.status}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

// its own timeout: unpacking ~340 MB of dependencies and compiling better-sqlite3 takes minutes on a busy machine
test('npm pack builds dist in prepack; npm i -g of the tarball into a temp prefix runs --help and infer', { timeout: 1_800_000 }, () => {
  const tmp = tempDir('sedna-ll-npm-');
  try {
    // a copy of what a fresh clone has (no dist/), sharing this checkout's node_modules
    const src = join(tmp.dir, 'src');
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'LICENSE', 'bin', 'src', 'scripts']) cpSync(join(ROOT, f), join(src, f), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp.dir], src)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0].files.map((f) => f.path);
    for (const f of ['dist/cli.js', 'dist/cli.bundle.cjs', 'dist/cli.bundle.cjs.cache', 'bin/sedna-ll', 'bin/package.json', 'LICENSE', 'README.md']) assert.ok(files.includes(f), `${f} not in:\n${files.join('\n')}`);
    const stray = files.filter((f) => !/^(bin\/|dist\/|README\.md$|LICENSE$|package\.json$)/.test(f));
    assert.deepEqual(stray, [], 'nothing but bin, dist, README, LICENSE and package.json');

    const prefix = join(tmp.dir, 'prefix');
    // the documented offline-friendly install: no CUDA download, no audit/fund requests
    npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--onnxruntime-node-install=skip', join(tmp.dir, packed[0].filename)], tmp.dir);
    const bin = join(prefix, 'bin', 'sedna-ll');
    // the bundle's code cache was made by this Node in prepack: the installed CLI runs from it
    const env = { ...process.env, HOME: tmp.dir, SEDNA_LL_HOME: join(tmp.dir, 'home'), SEDNA_LL_DEBUG_CODE_CACHE: '1' };
    const run = (args: string[]) => {
      const r = spawnSync(bin, args, { encoding: 'utf8', env, cwd: tmp.dir });
      if (r.error) throw r.error;
      assert.equal(r.status, 0, `installed sedna-ll ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
      assert.match(r.stderr, /^sedna-ll: code cache accepted\n/, `installed sedna-ll ${args.join(' ')}`);
      return r.stdout;
    };
    assert.match(run(['--help']), /^Usage: sedna-ll /);
    run(['init', '--device-id', 'npm-gw']);
    run(['task', 'add', writeIdentityModel(tmp.dir, 'ident', 3, { softmax: true }), '--task', 'global', '--labels', 'a,b,c']);
    writeFileSync(join(tmp.dir, 'one.jsonl'), '{"id":"s1","x":[0.1,0.2,3]}\n');
    const line = JSON.parse(run(['infer', join(tmp.dir, 'one.jsonl')]).trim()) as { id: string; label: string };
    assert.deepEqual([line.id, line.label], ['s1', 'c']);
    // only the platform's onnxruntime is needed at run time, but the package ships all: noted in the README
    assert.ok(readdirSync(join(prefix, 'lib', 'node_modules', 'sedna-ll', 'dist')).includes('cli.js'));
  } finally {
    tmp.cleanup();
  }
});
