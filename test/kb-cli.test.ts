// KB commands run as the real CLI on real data directories: init, devices, task add, publish,
// samples import/export/ls, label import; plus publishVersion as the learner calls it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { recordFields, sedna, tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';
import { verifyBytes } from '../src/format/signature.js';
import { parseIndex } from '../src/format/validate-index.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import { kbPaths } from '../src/kb/paths.js';
import { publishVersion } from '../src/kb/publish.js';

function kbInit() {
  const t = tempDir('sedna-ll-kbcli-');
  const data = join(t.dir, 'kb');
  const r = sedna(['kb', 'init', '--data', data, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const kb = (args: string[], input?: string) => sedna(['kb', ...args, '--data', data], { input });
  /** run kb args and require its exit code; a mismatch shows what the command printed */
  const exits = (args: string[], code: number, why = '') => {
    const res = kb(args);
    assert.equal(res.code, code, `kb ${args.join(' ')}: exit ${res.code}${why ? ` (${why})` : ''}: ${res.stderr.trim()}`);
    return res;
  };
  return { ...t, data, init: JSON.parse(r.stdout) as { admin_token: string; public_key: string }, kb, exits };
}

test('kb init: keys (private 0600), admin token once, refuses to overwrite without --force, usage error without --data', () => {
  const k = kbInit();
  try {
    assert.match(k.init.admin_token, /^sll_adm_/);
    assert.equal(statSync(join(k.data, 'keys', 'signing.key')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(k.data, 'keys', 'signing.pub'), 'utf8'), k.init.public_key);
    // the token itself is not stored anywhere in the data dir
    assert.ok(!readFileSync(join(k.data, 'kb.db')).includes(Buffer.from(k.init.admin_token)));
    const again = sedna(['kb', 'init', '--data', k.data]);
    assert.equal(again.code, 1, again.stderr);
    assert.match(again.stderr, /already exists.*--force/);
    assert.equal(again.stderr.trim().split('\n').length, 1);
    const forced = sedna(['kb', 'init', '--data', k.data, '--force', '--json']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(JSON.parse(forced.stdout).public_key, k.init.public_key);
    const none = sedna(['kb', 'device', 'ls'], { env: { SEDNA_LL_KB_DATA: '' } });
    assert.equal(none.code, 2, none.stderr);
    // a --data that names no KB is the operator's input to fix: exit 2, as for an edge --home with no config.json
    const notKb = sedna(['kb', 'device', 'ls', '--data', join(k.dir, 'nothing')]);
    assert.equal(notKb.code, 2, notKb.stderr);
    assert.match(notKb.stderr, /not a KB data directory/);
  } finally {
    k.cleanup();
  }
});

test('kb device add/ls/set/revoke: token shown once (or written 0600), hashed in the DB', () => {
  const k = kbInit();
  try {
    const a = k.kb(['device', 'add', 'gw-1', '--json']);
    assert.equal(a.code, 0, a.stderr);
    const dev = JSON.parse(a.stdout);
    assert.match(dev.token, /^sll_dev_/);
    assert.equal(dev.public_key, k.init.public_key);
    assert.ok(!readFileSync(join(k.data, 'kb.db')).includes(Buffer.from(dev.token)));
    const tok = join(k.dir, 'tok');
    const key = join(k.dir, 'kb.pub');
    const b = k.kb(['device', 'add', 'gw-2', '--channel', 'canary', '--token-out', tok, '--key-out', key]);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(!b.stdout.includes('sll_dev_'), 'token not printed when written to a file');
    assert.match(readFileSync(tok, 'utf8'), /^sll_dev_/);
    assert.equal(statSync(tok).mode & 0o777, 0o600);
    assert.equal(readFileSync(key, 'utf8'), k.init.public_key);
    const dup = k.kb(['device', 'add', 'gw-1']);
    assert.equal(dup.code, 1, dup.stderr);
    assert.match(dup.stderr, /already exists/);
    k.exits(['device', 'add', '../evil'], 2);
    k.exits(['device', 'set', 'gw-1', '--channel', 'canary'], 0);
    k.exits(['device', 'revoke', 'gw-2'], 0);
    k.exits(['device', 'revoke', 'ghost'], 2);
    const ls = JSON.parse(k.kb(['device', 'ls', '--json']).stdout).devices;
    assert.deepEqual(
      ls.map((d: any) => [d.id, d.channel, d.revoked_at !== null]),
      [
        ['gw-1', 'canary', false],
        ['gw-2', 'canary', true],
      ],
    );
    assert.match(k.kb(['device', 'ls']).stdout, /gw-2\s+canary\s+-\s+-\s+revoked/);
  } finally {
    k.cleanup();
  }
});

test('kb task add + kb publish: versions increment, index valid and signed, bad models refused', () => {
  const k = kbInit();
  try {
    const nothing = k.kb(['publish']);
    assert.equal(nothing.code, 1, nothing.stderr);
    assert.match(nothing.stderr, /no tasks/);
    const m1 = writeRandomMlp(k.dir, 'm1', [4, 8, 3], 1);
    const m2 = writeRandomMlp(k.dir, 'm2', [4, 8, 3], 2);
    const junk = join(k.dir, 'junk.onnx');
    writeFileSync(junk, Buffer.from('definitely not onnx'));
    const bad = k.kb(['task', 'add', junk, '--task', 'x']);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /junk\.onnx: not a loadable ONNX model/);
    k.exits(['task', 'add', m1, '--task', 'x', '--labels', 'a,b'], 2, 'label count must match the output');
    assert.match(k.exits(['task', 'add', join(k.dir, 'missing.onnx'), '--task', 'x'], 2).stderr, /missing\.onnx: cannot read: ENOENT/);
    let r = k.kb(['task', 'add', m1, '--task', 'global', '--fallback', '--labels', 'a,b,c', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(r.stdout);
    assert.deepEqual(t.inputs, [{ name: 'input', shape: ['N', 4], dtype: 'float32' }]);
    assert.equal(t.output_kind, 'probabilities');
    r = k.kb(['task', 'add', m2, '--task', 'site-berlin', '--attr', 'Site=Berlin_1', '--labels', 'a,b,c']);
    assert.equal(r.code, 0, r.stderr);

    const p1 = JSON.parse(k.kb(['publish', '--json']).stdout);
    assert.equal(p1.version, 1);
    assert.equal(p1.parent, null);
    const p2 = JSON.parse(k.kb(['publish', '--json', '--note', 'second', '--force']).stdout);
    assert.equal(p2.version, 2);
    assert.equal(p2.parent, 1);
    // an eval file named on the command line that cannot be read: a usage error (2), one line
    assert.equal(k.exits(['eval', join(k.dir, 'nope.csv')], 2).stderr, `sedna-ll: ${join(k.dir, 'nope.csv')}: cannot read: ENOENT\n`);

    const bytes = readFileSync(join(k.data, 'versions', '2', 'index.json'));
    const sig = readFileSync(join(k.data, 'versions', '2', 'index.json.sig'), 'utf8');
    assert.ok(verifyBytes(bytes, sig, k.init.public_key));
    const idx = parseIndex(bytes);
    assert.equal(idx.origin, 'kb');
    assert.equal(idx.allocation.fallback, 'global');
    assert.deepEqual(idx.allocation.attr_keys, ['site']);
    const berlin = idx.tasks.find((x) => x.id === 'site-berlin')!;
    assert.deepEqual(berlin.attrs, { site: 'Berlin-1' }, 'attributes normalised the Sedna way');
    assert.equal(berlin.model.sha256, JSON.parse(k.kb(['tasks', '--json']).stdout).tasks.find((x: any) => x.id === 'site-berlin').model_sha);
    assert.ok(existsSync(join(k.data, 'blobs', berlin.model.sha256)));
    assert.deepEqual(idx.notes, { note: 'second' });
    assert.match(k.kb(['tasks']).stdout, /global \(fallback\)/);
  } finally {
    k.cleanup();
  }
});

test('publishVersion (the learner API): chosen tasks, notes, channel; unchanged models keep their hashes', async () => {
  const k = kbInit();
  const m1 = writeRandomMlp(k.dir, 'm1', [2, 3], 1);
  k.exits(['task', 'add', m1, '--task', 'a'], 0);
  k.exits(['task', 'add', m1, '--task', 'b'], 0);
  const store = new SqliteKbStore(kbPaths(k.data));
  try {
    const v1 = await publishVersion(store, { notes: { round: 1 } });
    const tasks = await store.listTasks();
    const v2 = await publishVersion(store, { tasks: tasks.filter((t) => t.id === 'a'), channel: 'canary', notes: { round: 2 } });
    assert.equal(v2.version.n, v1.version.n + 1);
    assert.equal(v2.index.tasks.length, 1);
    assert.equal(v2.index.tasks[0].model.sha256, v1.index.tasks[0].model.sha256);
    assert.equal((await store.getChannel('stable'))!.version, 1);
    assert.equal((await store.getChannel('canary'))!.version, 2);
    const files = await store.readVersionIndex(2);
    assert.ok(verifyBytes(files!.bytes, files!.sig, k.init.public_key));
    assert.ok(await store.isPublishedBlob(v1.index.tasks[0].model.sha256));
    const c = await store.setChannelVersion('stable', 2);
    assert.deepEqual([c.version, c.previous_version], [2, 1]);
  } finally {
    await store.close();
    k.cleanup();
  }
});

test('kb samples import/export/ls and kb label import (CSV + JSONL): bad lines skipped, unknown ids reported, counters updated', async () => {
  const k = kbInit();
  try {
    const file = join(k.dir, 'train.jsonl');
    writeFileSync(
      file,
      [
        JSON.stringify({ x: [1, 2, 3], label: 'a', attrs: { site: 'Berlin' } }),
        JSON.stringify({ x: [4, 5, 6], label: 7 }),
        'not json',
        JSON.stringify({ x: 'nope', label: 'a' }),
        JSON.stringify({ x: [0.5, 0.25], id: 'given-id-1' }),
        '',
        JSON.stringify({ x: [9, 9], id: 'bad id!' }),
      ].join('\n') + '\n',
    );
    const r = k.kb(['samples', 'import', file, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(recordFields(r.stdout), { lines: 6, imported: 3, existing: 0, skipped: 3 });
    assert.match(r.stderr, /train\.jsonl:3: not valid JSON/);
    assert.match(r.stderr, /train\.jsonl:4: "x" must be/);
    assert.match(r.stderr, /train\.jsonl:7: "id" must be/);
    const again = JSON.parse(k.kb(['samples', 'import', file, '--json']).stdout);
    assert.equal(again.imported, 0, 're-import stores nothing twice');
    assert.equal(again.existing, 3);
    const strict = k.kb(['samples', 'import', file, '--strict']);
    assert.equal(strict.code, 1, strict.stderr);
    assert.match(strict.stderr, /:3: not valid JSON.*--strict/);

    const all = JSON.parse(k.kb(['samples', 'ls', '--json']).stdout).samples;
    assert.equal(all.length, 3);
    assert.equal(JSON.parse(k.kb(['samples', 'ls', '--unlabelled', '--json']).stdout).samples.length, 1);
    k.exits(['samples', 'ls', '--labelled', '--unlabelled'], 2);

    // labels: CSV with a header (columns in any order, quoted fields) and JSONL
    const csv = join(k.dir, 'labels.csv');
    writeFileSync(csv, 'label,id\n"b, really",given-id-1\nc,unknown-id-1\n,given-id-1\n');
    const lc = k.kb(['label', 'import', csv, '--json']);
    assert.equal(lc.code, 0, lc.stderr);
    const lcr = JSON.parse(lc.stdout);
    assert.deepEqual([lcr.stored, lcr.newly_labelled, lcr.unknown, lcr.skipped], [1, 1, ['unknown-id-1'], 1]);
    const jl = join(k.dir, 'labels.jsonl');
    const aId = all.find((s: any) => s.label === 'a').id;
    writeFileSync(jl, JSON.stringify({ id: aId, label: 'z' }) + '\n' + JSON.stringify({ id: 'nope-nope', label: 'q' }) + '\n');
    const lj = k.kb(['label', 'import', jl]);
    assert.equal(lj.code, 0, lj.stderr);
    assert.match(lj.stdout, /1 label\(s\) stored \(0 newly labelled\), 1 unknown/);
    assert.match(lj.stderr, /unknown sample id "nope-nope"/);
    const badHeader = join(k.dir, 'bad.csv');
    writeFileSync(badHeader, 'sample,class\nx,y\n');
    k.exits(['label', 'import', badHeader], 1);
    // input files named on the command line that cannot be read: usage errors (2), as on the edge
    assert.match(k.exits(['label', 'import', join(k.dir, 'nope.csv')], 2).stderr, /nope\.csv: cannot read: ENOENT/);
    assert.match(k.exits(['samples', 'import', join(k.dir, 'nope.jsonl')], 2).stderr, /nope\.jsonl: cannot read: ENOENT/);

    const store = new SqliteKbStore(kbPaths(k.data));
    try {
      const c = await store.counters();
      assert.equal(c.labelled_new, 3, '2 labelled on import + 1 by the CSV');
      assert.equal((await store.getSample('given-id-1'))!.label, 'b, really');
      assert.equal((await store.getSample(aId))!.label_source, 'import:labels.jsonl');
    } finally {
      await store.close();
    }

    // export -> import into another KB reproduces x, labels and attrs
    const out = join(k.dir, 'export.jsonl');
    const ex = k.kb(['samples', 'export', '-o', out, '--json']);
    assert.equal(ex.code, 0, ex.stderr);
    assert.equal(JSON.parse(ex.stdout).exported, 3);
    const k2 = kbInit();
    try {
      const im = JSON.parse(k2.kb(['samples', 'import', out, '--json']).stdout);
      assert.equal(im.imported, 3);
      const a = JSON.parse(k.kb(['samples', 'export']).stdout.split('\n')[0]);
      const b = JSON.parse(k2.kb(['samples', 'export']).stdout.split('\n')[0]);
      assert.deepEqual([b.id, b.x, b.label, b.attrs], [a.id, a.x, a.label, a.attrs]);
    } finally {
      k2.cleanup();
    }
  } finally {
    k.cleanup();
  }
});
