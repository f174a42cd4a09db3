// Hostile inputs and broken outputs, through the real CLI (found by a fault-injection campaign
// against the build): each case names what it feeds the command and what must come out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN, ROOT, sedna, tempDir } from './helpers/cli.js';
import { makeHome, outboxRows } from './edge-runtime-fixtures.js';
import { writeIdentityModel } from './helpers/models.js';
import { edgeIds, kbSamples, makeEdge, seedOutbox, sednaAsync } from './helpers/sync-edge.js';
import { startTestKb } from './helpers/kb-server.js';
import { homePaths } from '../src/store/home.js';
import { openEdgeDb } from '../src/store/db.js';

/** Start `cat FILE` (a FIFO's reader); resolves with what it read once it exits. */
function readFifo(path: string): { done: Promise<string>; kill: () => void } {
  const c = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout.on('data', (b: Buffer) => (out += b.toString()));
  return { done: new Promise((res) => c.on('close', () => res(out))), kill: () => c.kill('SIGKILL') };
}

test('an output named on the command line that is a FIFO is written through, not replaced (kb device add --token-out, kb samples export -o)', async () => {
  const t = tempDir();
  const readers: { kill: () => void }[] = [];
  try {
    const data = join(t.dir, 'kb');
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    const jsonl = join(t.dir, 's.jsonl');
    writeFileSync(jsonl, '{"x":[1,2,3],"label":"a"}\n{"x":[4,5,6],"label":"b"}\n');
    assert.equal(sedna(['kb', 'samples', 'import', jsonl, '--data', data]).code, 0);
    const fifo = join(t.dir, 'out.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);

    const tokenReader = readFifo(fifo);
    readers.push(tokenReader);
    const add = await sednaAsync(['kb', 'device', 'add', 'gw-1', '--data', data, '--token-out', fifo]);
    assert.equal(add.code, 0, add.stderr);
    // before: the token went to a new regular file renamed over the FIFO, its reader got nothing
    assert.ok(statSync(fifo).isFIFO(), 'the FIFO was replaced by a regular file');
    assert.match(await tokenReader.done, /^\S{16,}\n$/);

    const exportReader = readFifo(fifo);
    readers.push(exportReader);
    const exp = await sednaAsync(['kb', 'samples', 'export', '--data', data, '-o', fifo]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.ok(statSync(fifo).isFIFO(), 'the FIFO was replaced by a regular file');
    const lines = (await exportReader.done).trim().split('\n').map((l) => JSON.parse(l) as { label: string });
    assert.deepEqual(lines.map((l) => l.label).sort(), ['a', 'b']);
    assert.deepEqual(readFileSync(jsonl, 'utf8').split('\n').length, 3); // the input is untouched
  } finally {
    for (const r of readers) r.kill();
    t.cleanup();
  }
});

// /dev/stdout is a link to /proc/self/fd/1. With stdout redirected to a regular file
// (`--token-out /dev/stdout > tok.txt`) the link's target is a regular file, so the output was
// "atomically replaced": a temp file renamed over the link (as root, /dev/stdout itself), and
// tok.txt never got the token. The link here stands in for /dev/stdout (the test must not
// touch the machine's /dev); the CLI's stdout is a file opened with '>' semantics (offset 0,
// no O_APPEND), so writing the token through a new open of the link would also be overwritten
// by the lines the CLI prints next: it must go to the CLI's own fd 1.
test('an output named as a link to /proc/self/fd/1 (what /dev/stdout is) with stdout a regular file: the token lands in that file, the link stays', () => {
  const t = tempDir();
  try {
    const data = join(t.dir, 'kb');
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    const link = join(t.dir, 'stdout');
    symlinkSync('/proc/self/fd/1', link);
    const outFile = join(t.dir, 'tok.txt');
    const fd = openSync(outFile, 'w');
    let r;
    try {
      r = spawnSync(process.execPath, [BIN, 'kb', 'device', 'add', 'gw-1', '--data', data, '--token-out', link], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    } finally {
      closeSync(fd);
    }
    assert.equal(r.status, 0, r.stderr);
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link was replaced by a regular file');
    const out = readFileSync(outFile, 'utf8');
    assert.match(out, /^sll_dev_\S{16,}\n/m, out);
    assert.match(out, /enrolled/, out);
  } finally {
    t.cleanup();
  }
});

// ...but only a regular file goes through the fd itself. A pipe on stdout (`-o /dev/stdout |
// slow-reader`) is opened anew by name, as before: libuv sets fd 1 non-blocking when stdout is a
// pipe, and writeSync to it failed with EAGAIN once the pipe was full (`kb samples export -o
// /dev/stdout | (sleep 2; wc -c)`: 65536 bytes, exit 1). Asked of ownFd in a child whose
// stdout is a pipe, then a file (the EAGAIN itself needs a reader slower than the writer).
test('ownFd: /dev/stdout names fd 1 when stdout is a regular file, nothing when it is a pipe (a pipe is opened anew: fd 1 may be non-blocking)', () => {
  const t = tempDir();
  try {
    const mod = pathToFileURL(join(ROOT, 'dist', 'durable', 'atomic-write.js')).href;
    const code = `const { ownFd } = await import(${JSON.stringify(mod)}); process.stdout.write(''); process.stderr.write(JSON.stringify([ownFd('/dev/stdout'), ownFd('/dev/fd/1'), ownFd('/proc/self/fd/1'), ownFd('/dev/null')]));`;
    const piped = spawnSync(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    assert.equal(piped.status, 0, piped.stderr);
    assert.deepEqual(JSON.parse(piped.stderr), [null, null, null, null]);
    const fd = openSync(join(t.dir, 'out'), 'w');
    let toFile;
    try {
      toFile = spawnSync(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    } finally {
      closeSync(fd);
    }
    assert.equal(toFile.status, 0, toFile.stderr);
    assert.deepEqual(JSON.parse(toFile.stderr), [1, 1, 1, null]);
  } finally {
    t.cleanup();
  }
});

test('a payload blob replaced by a FIFO or a link to /dev/zero: sync and samples export go on without it instead of hanging', async () => {
  const kb = await startTestKb();
  const edge = makeEdge(kb);
  try {
    const small = seedOutbox(edge.home, 3, 3072, { seed: 1 });
    const big = seedOutbox(edge.home, 2, 100_000, { seed: 2 }); // over INLINE_MAX: blobs/<sha>
    const db = openEdgeDb(homePaths(edge.home).db, { readonly: true });
    const shas = big.map((id) => (db.prepare('SELECT payload_sha FROM samples WHERE id = ?').pluck().get(id) as string));
    db.close();
    const blobs = shas.map((sha) => join(homePaths(edge.home).blobs, sha));
    for (const b of blobs) rmSync(b);
    assert.equal(spawnSync('mkfifo', [blobs[0]]).status, 0);
    symlinkSync('/dev/zero', blobs[1]);

    // before: readFileSync opened the FIFO and waited for a writer forever (and read /dev/zero
    // until memory ran out); the timeout only keeps a regression from hanging the suite
    const exp = await sednaAsync(['samples', 'export', '--home', edge.home], { timeoutMs: 60_000 });
    assert.equal(exp.stdout.trim().split('\n').length, 5, exp.stderr);
    for (const sha of shas) assert.match(exp.stderr, new RegExp(`blob ${sha}: ENOTREG`));

    const sync = await sednaAsync(['sync', '--push-only', '--json', '--home', edge.home], { timeoutMs: 60_000 });
    assert.equal(sync.code, 0, sync.stderr);
    // said once, on stderr and in the record (was: only an event in the log)
    const warning = /^sedna-ll: warning: 2 sample\(s\) pushed without their payload: the file under .*blobs is missing or unreadable/m;
    assert.match(sync.stderr, warning);
    assert.equal(sync.stderr.match(/without their payload/g)!.length, 1, sync.stderr);
    assert.match(JSON.parse(sync.stdout).warnings.join('\n'), /2 sample\(s\) pushed without their payload/);
    assert.deepEqual(edgeIds(edge.home).pending, []);
    const atKb = new Map((await kbSamples(kb)).map((s) => [s.id, s]));
    for (const id of [...small, ...big]) assert.ok(atKb.has(id), `${id} not at the KB`);
    for (const id of big) assert.equal(atKb.get(id)!.payload_bytes, 0);
  } finally {
    edge.cleanup();
    await kb.stop();
  }
});

/** Run sedna-ll with its stdout on /dev/full (every write fails with ENOSPC, as on a full disk). */
function toFullDisk(args: string[], input?: string): { code: number | null; stderr: string } {
  const fd = openSync('/dev/full', 'w');
  try {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, input, stdio: ['pipe', fd, 'pipe'], encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stderr: r.stderr };
  } finally {
    closeSync(fd);
  }
}

test('stdout on a full disk: one line and exit 1, no stack trace; a sample infer logged stays logged', { skip: existsSync('/dev/full') ? false : 'no /dev/full here' }, () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(t.dir, 'm', 3, { softmax: true }), inDim: 3, outDim: 3 }], hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    for (const args of [['status', '--json', '--home', home], ['--help']]) {
      const r = toFullDisk(args);
      // before: the 'error' handler rethrew: "throw e;" and the ENOSPC stack on stderr
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stderr, 'sedna-ll: stdout: write failed (ENOSPC)\n', args.join(' '));
    }
    const r = toFullDisk(['infer', '--home', home], '{"id":"a","x":[0.1,0.7,0.2]}\n');
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.match(r.stderr, /^sedna-ll: stdout: write failed \(ENOSPC\)$/m);
    assert.equal(outboxRows(home).length, 1);
  } finally {
    t.cleanup();
  }
});

test('samples export -o FILE on a full disk: exit 1 naming the file, and the --json record says so (was: exit 0, no record)', { skip: existsSync('/dev/full') ? false : 'no /dev/full here' }, () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(t.dir, 'm', 3, { softmax: true }), inDim: 3, outDim: 3 }], hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    // more than one stream buffer of records: the write fails while export is still writing
    seedOutbox(home, 200, 3072);
    // /dev/full is a device: written in place (the edge export streams to the path it is given)
    const r = sedna(['samples', 'export', '--home', home, '-o', '/dev/full', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, 'sedna-ll: /dev/full: write failed (ENOSPC)\n');
    const rec = JSON.parse(r.stdout) as { exit: number; error: { code: string; message: string } };
    assert.deepEqual([rec.exit, rec.error], [1, { code: 'failure', message: '/dev/full: write failed (ENOSPC)' }]);
    assert.equal(outboxRows(home).length, 200);
  } finally {
    t.cleanup();
  }
});

/** An edge home enrolled with a KB address nothing answers on (usage errors come before any request). */
function offlineEdge(dir: string): string {
  const home = join(dir, 'home');
  writeFileSync(join(dir, 'token'), 'tok\n');
  writeFileSync(join(dir, 'kb.pub'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
  const r = sedna(['init', '--device-id', 'gw-1', '--kb-url', 'http://127.0.0.1:9', '--token-file', join(dir, 'token'), '--kb-key', join(dir, 'kb.pub'), '--home', home]);
  assert.equal(r.code, 0, r.stderr);
  return home;
}

test('sync --max-time / --jitter beyond what a timer holds: a usage error naming the option (was: exit 1 ERR_OUT_OF_RANGE, or a 1 ms jitter)', () => {
  const t = tempDir();
  try {
    const home = offlineEdge(t.dir);
    for (const [opt, value] of [['--max-time', '99999999999'], ['--jitter', '99999999999']]) {
      const r = sedna(['sync', '--home', home, '--json', opt, value]);
      assert.equal(r.code, 2, `${opt} ${value}: ${r.stderr}`);
      assert.equal(r.stderr, `sedna-ll: ${opt} "${value}": expected ${opt === '--jitter' ? 'seconds >= 0' : 'a number of seconds > 0'} and <= 2147483\n`);
    }
  } finally {
    t.cleanup();
  }
});

test('sync with a proxy variable that is no proxy URL: exit 2 naming the variable, its password masked (was: exit 1, ERR_INVALID_URL against the KB URL)', () => {
  const t = tempDir();
  try {
    const home = offlineEdge(t.dir);
    const cases: [string, string, string][] = [
      ['HTTP_PROXY', 'junk', 'sedna-ll: HTTP_PROXY "junk": not a proxy URL (expected e.g. http://proxy.example:3128)'],
      ['http_proxy', 'http://user:secret@:0', 'sedna-ll: http_proxy "http://***@:0": not a proxy URL (expected e.g. http://proxy.example:3128)'],
      ['HTTP_PROXY', 'ftp://proxy', 'sedna-ll: HTTP_PROXY "ftp://proxy": unsupported proxy scheme "ftp:" (http:, https:, socks5:)'],
    ];
    for (const [name, value, line] of cases) {
      const r = sedna(['sync', '--home', home, '--json', '--retries', '0'], { env: { HTTP_PROXY: '', http_proxy: '', NO_PROXY: '', no_proxy: '', [name]: value } });
      assert.equal(r.code, 2, `${name}=${value}: ${r.stderr}`);
      assert.equal(r.stderr, line + '\n');
      assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'usage');
    }
    // a host NO_PROXY excludes never uses the proxy: its value is not the run's business
    const r = sedna(['sync', '--home', home, '--json', '--retries', '0', '--max-time', '5'], { env: { HTTP_PROXY: 'junk', NO_PROXY: '127.0.0.1' } });
    assert.equal(r.code, 3, r.stderr);
  } finally {
    t.cleanup();
  }
});

test('infer CSV: a bad field of 1 MB with control bytes is quoted short and escaped; the good rows around it are logged', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(t.dir, 'm', 3, { softmax: true }), inDim: 3, outDim: 3 }], hard: [{ type: 'cross_entropy', threshold: 1.01 }] });
    const csv = join(t.dir, 'in.csv');
    const junk = '7\u0000\u001b[2J' + '9'.repeat(1_000_000);
    writeFileSync(csv, `id,a,b,c\ng1,0.1,0.7,0.2\n${'i'.repeat(100_000)},${junk},1,2\ng2,0.5,0.2,0.3\n`);
    const r = sedna(['infer', csv, '--json'], { home });
    assert.equal(r.code, 0, r.stderr.slice(0, 500));
    const lines = r.stderr.trim().split('\n');
    // before: the whole field (and the whole id) in the line, NUL and ESC raw
    assert.equal(lines[0], `sedna-ll: line 3 (id "${'i'.repeat(40)}"... (100000 characters)): feature column 2 = "7\\u0000\\u001b[2J${'9'.repeat(34)}"... (1000006 characters) is not a finite number`);
    assert.equal(lines.length, 3); // the bad line, the summary, the --json record
    assert.deepEqual(JSON.parse(lines[2]).bad, 1);
    assert.equal(outboxRows(home).length, 2);
  } finally {
    t.cleanup();
  }
});

test('a damaged V8 code cache (4 KB inverted inside its data) is rejected and the CLI runs: no SIGSEGV/SIGTRAP', () => {
  const t = tempDir();
  try {
    // a copy of the package (bin, package.json, dist with its times: the launcher compares them)
    const pkg = join(t.dir, 'pkg');
    mkdirSync(pkg);
    cpSync(join(ROOT, 'bin'), join(pkg, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    cpSync(join(ROOT, 'dist'), join(pkg, 'dist'), { recursive: true, preserveTimestamps: true });
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
    const cacheFile = join(pkg, 'dist', 'cli.bundle.cjs.cache');
    const good = readFileSync(cacheFile);
    const run = () => spawnSync(process.execPath, [join(pkg, 'bin', 'sedna-ll'), 'status', '--home', join(t.dir, 'no-home')], { env: { ...process.env, SEDNA_LL_DEBUG_CODE_CACHE: '1' }, encoding: 'utf8', timeout: 120_000 });
    const notHome = `sedna-ll: ${join(t.dir, 'no-home')}: not an edge home (no config.json); run "sedna-ll init --device-id ID" first\n`;
    let r = run();
    assert.deepEqual([r.status, r.stderr], [2, `sedna-ll: code cache accepted\n${notHome}`]);
    const data = good.indexOf(10) + 1;
    for (const at of [0.2, 0.5, 0.8]) {
      const bad = Buffer.from(good);
      const from = data + Math.floor((good.length - data) * at);
      for (let k = from; k < from + 4096; k++) bad[k] ^= 0xff;
      writeFileSync(cacheFile, bad);
      r = run();
      // before: V8 deserialized it unchecked; exit by SIGTRAP or SIGSEGV, nothing printed
      assert.deepEqual([r.status, r.signal, r.stderr], [2, null, `sedna-ll: code cache damaged\n${notHome}`], `4 KB inverted at ${at}`);
    }
  } finally {
    t.cleanup();
  }
});

test('config set KEY 1e309 (Infinity, written as null) is refused and config.json stays as it was (was: exit 0, then every command exit 2)', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(t.dir, 'm', 3, { softmax: true }), inDim: 3, outDim: 3 }] });
    const file = join(home, 'config.json');
    const before = readFileSync(file);
    let r = sedna(['config', 'set', 'outbox.max_mb', '1e309'], { home });
    assert.deepEqual([r.code, r.stderr], [2, 'sedna-ll: config set outbox.max_mb: 1e309 is not a finite number\n']);
    r = sedna(['config', 'set', 'upload.per_task', '{"a":"raw","b":1e999}'], { home });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /upload\.per_task\.b null/);
    assert.deepEqual(readFileSync(file), before);
    r = sedna(['status', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
  } finally {
    t.cleanup();
  }
});

test('sync --ca with a file that holds no certificate (junk, a key, empty): exit 2 naming it (was: "self-signed certificate" on every request)', () => {
  const t = tempDir();
  try {
    const home = offlineEdge(t.dir);
    const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    const files: [string, string | Buffer, string][] = [
      ['junk.pem', 'junk', 'no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)'],
      ['key.pem', key, 'no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)'],
      ['empty.pem', '', 'no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)'],
      ['broken.pem', '-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n', 'certificate 1 does not parse ('],
    ];
    for (const [name, body, reason] of files) {
      const f = join(t.dir, name);
      writeFileSync(f, body);
      const r = sedna(['sync', '--home', home, '--ca', f, '--retries', '0']);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`sedna-ll: --ca ${f}: ${reason}`) && r.stderr.split('\n').length === 2, r.stderr);
    }
  } finally {
    t.cleanup();
  }
});

test('serve / kb serve: --port over 65535 and a --tls-cert that is no certificate are usage errors naming the option (was: exit 1, Node\'s or OpenSSL\'s words)', () => {
  const t = tempDir();
  try {
    const data = join(t.dir, 'kb');
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    let r = sedna(['kb', 'serve', '--data', data, '--port', '65536']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^sedna-ll: option '--port <n>' argument '65536' is invalid\. --port "65536": expected an integer >= 0 and <= 65535\n/);
    const home = join(t.dir, 'home');
    makeHome(home, { tasks: [{ id: 'global', model: writeIdentityModel(t.dir, 'm', 3, { softmax: true }), inDim: 3, outDim: 3 }] });
    r = sedna(['serve', '--home', home, '--port', '99999']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--port "99999": expected an integer >= 0 and <= 65535\n/);
    const junk = join(t.dir, 'junk.pem');
    writeFileSync(junk, 'junk');
    r = sedna(['kb', 'serve', '--data', data, '--port', '0', '--tls-cert', junk, '--tls-key', junk]);
    assert.deepEqual([r.code, r.stderr], [2, `sedna-ll: --tls-cert ${junk}: not a PEM certificate (ERR_OSSL_PEM_NO_START_LINE)\n`]);
    r = sedna(['kb', 'serve', '--data', data, '--port', '0', '--tls-cert', t.dir, '--tls-key', junk]);
    assert.deepEqual([r.code, r.stderr], [2, `sedna-ll: --tls-cert ${t.dir}: cannot read: EISDIR\n`]);
  } finally {
    t.cleanup();
  }
});

test('an empty SEDNA_LL_HOME counts as unset and an empty --home is refused (was: the working directory became the edge home)', () => {
  const t = tempDir();
  try {
    const cwd = join(t.dir, 'cwd');
    mkdirSync(cwd);
    const r = sedna(['init', '--device-id', 'gw-1'], { cwd, env: { HOME: t.dir, SEDNA_LL_HOME: '' } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(join(cwd, 'config.json')), 'init made the working directory an edge home');
    assert.ok(existsSync(join(t.dir, '.sedna-ll', 'config.json')));
    const s = sedna(['status', '--home', ''], { cwd });
    assert.deepEqual([s.code, s.stderr], [2, 'sedna-ll: --home "": expected a directory\n']);
  } finally {
    t.cleanup();
  }
});

test('kb init --data FILE (a file, not a directory): exit 2 saying so, the file untouched (was: exit 1 "EEXIST: file already exists, mkdir")', () => {
  const t = tempDir();
  try {
    const f = join(t.dir, 'data.jsonl');
    writeFileSync(f, '{"x":[1]}\n');
    const r = sedna(['kb', 'init', '--data', f]);
    assert.deepEqual([r.code, r.stderr], [2, `sedna-ll: ${f}: exists and is not a directory (kb init --data takes a directory)\n`]);
    assert.equal(readFileSync(f, 'utf8'), '{"x":[1]}\n');
  } finally {
    t.cleanup();
  }
});

test('a corrupt edge.db met while a push streams its body: one line naming the file, exit 1, no retries (was: 5 retries of "ECONNRESET: socket hang up", exit 4)', async () => {
  const kb = await startTestKb();
  const edge = makeEdge(kb);
  try {
    const ids = seedOutbox(edge.home, 3000, 3072, { seed: 3 });
    const path = homePaths(edge.home).db;
    // zero out payload pages in the middle of the outbox: the first batch reads clean pages and
    // goes; the second one's body meets the damage while it is being sent
    const db = new Database(path);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pages = db.prepare(`SELECT pageno FROM dbstat WHERE name = 'sample_payloads' AND pagetype = 'leaf' ORDER BY pageno`).pluck().all() as number[];
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    assert.ok(pages.length > 2000, `${pages.length} payload pages`);
    const fd = openSync(path, 'r+');
    for (const p of pages.slice(1500, 1520)) writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (p - 1) * pageSize);
    closeSync(fd);

    const r = await sednaAsync(['sync', '--push-only', '--json', '--home', edge.home], { timeoutMs: 120_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /retry|ECONNRESET|unreachable/, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /edge\.db.*SQLITE_CORRUPT/);
    assert.equal(JSON.parse(r.stdout).exit, 1);
    // what the KB acked before is marked; nothing is lost from the outbox's rows
    const { pending, uploaded } = edgeIds(edge.home);
    assert.equal(pending.length + uploaded.length, ids.length);
    assert.ok(uploaded.length >= 1, 'the batch before the damage is marked uploaded');
    const atKb = new Set((await kbSamples(kb)).map((s) => s.id));
    for (const id of uploaded) assert.ok(atKb.has(id));
  } finally {
    edge.cleanup();
    await kb.stop();
  }
});
