// Start-up paths of the CLI (issue 2, cold start): `--version` is answered by bin/sedna-ll
// without loading the CLI, a named command loads only its own module, and onnxruntime's
// telemetry stays off. These tests check that the short cuts change nothing a user sees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sedna, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { makeHome } from './edge-runtime-fixtures.js';
import { makeEdge } from './helpers/sync-edge.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const COMMANDS = ['init', 'task', 'infer', 'feedback', 'samples', 'status', 'serve', 'sync', 'model', 'kb', 'config', 'completion'];

test('--version and -V print the package version, as commander does when it parses the line', () => {
  for (const flag of ['--version', '-V']) {
    const fast = sedna([flag]);
    assert.deepEqual(fast, { code: 0, stdout: `${VERSION}\n`, stderr: '' });
    // with a global option before it, the full CLI (commander) answers: the same output
    assert.deepEqual(sedna(['--home', '/nonexistent', flag]), fast);
  }
});

test('--help, help and usage errors before the command list every command; a command gets its own help', () => {
  const commandsOf = (help: string) => COMMANDS.filter((c) => new RegExp(`^  ${c}\\b`, 'm').test(help));
  for (const args of [['--help'], ['help'], ['--home', '/x', '--help']]) {
    const r = sedna(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.deepEqual(commandsOf(r.stdout), COMMANDS, args.join(' '));
  }
  // a parse error: the one offending line and where to read more, not the whole help
  const bad = sedna(['--bogus', 'infer']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, "sedna-ll: unknown option '--bogus'\nsee `sedna-ll infer --help`\n");
  const badSub = sedna(['sync', '--batch-size', 'abc']);
  assert.equal(badSub.code, 2);
  assert.deepEqual(badSub.stderr.split('\n'), ['sedna-ll: option \'--batch-size <n>\' argument \'abc\' is invalid. --batch-size "abc": expected an integer >= 1', 'see `sedna-ll sync --help`', '']);
  // an unknown command is still matched against every command's name
  const typo = sedna(['infr']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /Did you mean infer\?/);
  // help at every depth
  for (const [args, usage] of [[['help', 'kb', 'device'], 'kb device'], [['help', 'kb', 'device', 'add'], 'kb device add'], [['kb', 'help', 'device'], 'kb device']] as const) {
    const r = sedna([...args]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: sedna-ll ${usage} `), args.join(' '));
  }
  for (const args of [['infer', '--help'], ['help', 'infer'], ['--home', '/x', 'infer', '--help']]) {
    const r = sedna(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: sedna-ll infer \[options\] \[file\]/, args.join(' '));
    assert.match(r.stdout, /--no-log/);
  }
  const sub = sedna(['kb', 'serve', '--help']);
  assert.equal(sub.code, 0, sub.stderr);
  assert.match(sub.stdout, /^Usage: sedna-ll kb serve/);
});

test('infer leaves no onnxruntime telemetry behind (no ~/.cache/Microsoft event db, no $TMPDIR/mat-debug-<pid>.log)', (t) => {
  const tmp = tempDir();
  try {
    const model = writeIdentityModel(tmp.dir, 'id', 3, { softmax: true });
    const home = join(tmp.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model, inDim: 3, outDim: 3, labels: ['a', 'b', 'c'] }], unseen: { methods: [], combine: 'any' }, hard: [] });
    const run = (name: string, env: NodeJS.ProcessEnv) => {
      const dirs = { HOME: join(tmp.dir, name, 'home'), TMPDIR: join(tmp.dir, name, 'tmp') };
      for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
      const r = sedna(['infer', '--no-log'], { home, input: '{"id":1,"x":[0.1,0.7,0.2]}\n', env: { ...env, ...dirs } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).label, 'b');
      return existsSync(join(dirs.HOME, '.cache', 'Microsoft')) || readdirSync(dirs.TMPDIR).some((f) => f.startsWith('mat-debug-'));
    };
    const env = { ...process.env };
    delete env.ORT_DISABLE_TELEMETRY;
    // control: an operator's explicit setting is kept, and shows what telemetry leaves behind
    if (!run('control', { ...env, ORT_DISABLE_TELEMETRY: '0' })) {
      t.skip('this onnxruntime leaves no telemetry files even when enabled: nothing to tell apart');
      return;
    }
    assert.equal(run('default', env), false, 'telemetry files written by a default infer run');
  } finally {
    tmp.cleanup();
  }
});

test('sync loads undici only when a proxy variable applies to the KB URL (its ~120 ms of start-up is for proxied gateways only)', () => {
  const tmp = tempDir();
  try {
    // a preload that reports, at exit, whether the undici package was loaded in the process
    const probe = join(tmp.dir, 'probe.mjs');
    writeFileSync(probe, `import { createRequire } from 'node:module';\nconst cache = createRequire(import.meta.url).cache;\nprocess.on('exit', () => process.stderr.write('undici loaded: ' + Object.keys(cache).some((k) => k.includes('/node_modules/undici/')) + '\\n'));\n`);
    // an edge whose KB refuses connections: the client is made and a request tried, then exit 3
    const publicKeyPem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const e = makeEdge({ url: 'http://127.0.0.1:9', deviceToken: 'x'.repeat(20), publicKeyPem });
    try {
      const sync = (env: NodeJS.ProcessEnv) => {
        const r = sedna(['sync', '--retries', '0'], { home: e.home, env: { NODE_OPTIONS: `--import ${probe}`, HTTP_PROXY: '', http_proxy: '', HTTPS_PROXY: '', https_proxy: '', ...env } });
        assert.equal(r.code, 3, r.stderr);
        const m = /undici loaded: (true|false)/.exec(r.stderr);
        assert.ok(m, r.stderr);
        return m[1] === 'true';
      };
      assert.equal(sync({}), false, 'no proxy: node:http carries the requests');
      assert.equal(sync({ HTTPS_PROXY: 'http://127.0.0.1:9' }), false, 'an https proxy does not apply to an http KB');
      assert.equal(sync({ HTTP_PROXY: 'http://127.0.0.1:9' }), true, 'a proxy applies: undici carries the requests (the control)');
    } finally {
      e.cleanup();
    }
  } finally {
    tmp.cleanup();
  }
});
