// Review fixes through the real CLI: all-bad streams fail, feedback labels are checked against
// the task's classes, task add keeps labels, kb publish without changes is a no-op, help texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { Outbox } from '../src/store/outbox.js';
import { logRecord } from './helpers/log-record.js';
import { recordFields, sedna, tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';

/** A home with task "berlin" (3 classes a,b,c, site=berlin) active. */
function edgeHome(dir: string): { home: string; mlp: string } {
  const home = join(dir, 'edge');
  assert.equal(sedna(['init', '--device-id', 'gw-1'], { home }).code, 0, 'init');
  const mlp = writeRandomMlp(dir, 'mlp', [4, 5, 3], 3);
  const r = sedna(['task', 'add', mlp, '--task', 'berlin', '--attr', 'site=berlin', '--labels', 'a,b,c'], { home });
  assert.equal(r.code, 0, r.stderr);
  return { home, mlp };
}

/** Log samples of task "berlin" the way infer does (in-process Outbox on the home's config). */
function logSamples(home: string, n: number, task = 'berlin'): string[] {
  const p = homePaths(home);
  const db = openEdgeDb(p.db);
  try {
    const recs = Array.from({ length: n }, (_, i) =>
      logRecord(Buffer.from(Float32Array.from([i, i + 0.5, -i, 1]).buffer), { task, attrs: { site: task }, predLabel: 'a', scores: [0.4, 0.3, 0.3], hardReasons: ['cross_entropy'], kbVersion: 'local-1' }),
    );
    return new Outbox(db, p, loadConfig(home)).logBatch(recs).map((r) => r.sampleId);
  } finally {
    db.close();
  }
}

test('a stream where every record is bad exits 1 (infer, feedback --file); one good record is enough for 0', () => {
  const t = tempDir();
  try {
    const { home } = edgeHome(t.dir);
    let r = sedna(['infer'], { home, input: 'bad\n' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /all 1 record\(s\) bad, none processed/);
    r = sedna(['infer', '--no-log'], { home, input: 'bad\n{"x":[1,2,3,4],"attrs":{"site":"berlin"}}\n' });
    assert.equal(r.code, 0, r.stderr);
    r = sedna(['infer'], { home, input: '' });
    assert.equal(r.code, 0, 'empty input is not a failure');
    assert.match(sedna(['infer', '--help']).stdout, /no\s+good\s+one\s+exits\s+1/);

    const [id] = logSamples(home, 1);
    const lf = join(t.dir, 'labels.jsonl');
    writeFileSync(lf, 'id,label\nnot json\n');
    r = sedna(['feedback', '--file', lf], { home });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /labelled 0 samples, 2 skipped/);
    assert.match(r.stderr, /no label stored, all 2 line\(s\) skipped/);
    writeFileSync(lf, `not json\n{"id":"${id}","label":"b"}\n`);
    r = sedna(['feedback', '--file', lf], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /labelled 1 sample, 1 skipped/);
    assert.match(sedna(['feedback', '--help']).stdout, /exit 1 when no line\s+could\s+be\s+stored/);
  } finally {
    t.cleanup();
  }
});

test('feedback refuses a label outside the task\'s classes (exit 2, naming sample and classes) unless --new-class', () => {
  const t = tempDir();
  try {
    const { home } = edgeHome(t.dir);
    const [id1, id2] = logSamples(home, 2);
    const [other] = logSamples(home, 1, 'not-in-index');
    const labelOf = (id: string) => {
      const r = sedna(['samples', 'ls', '--json'], { home });
      assert.equal(r.code, 0, r.stderr);
      const rows = (JSON.parse(r.stdout) as { samples: { id: string; label: string | null }[] }).samples;
      return rows.find((x) => x.id === id)?.label ?? null;
    };
    let r = sedna(['feedback', '--sample', id1, '--label', 'zzz'], { home });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`sample ${id1}: label "zzz" is not a class of task "berlin" \\(a, b, c\\)`));
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one-line error');
    assert.equal(labelOf(id1), null, 'nothing stored');

    r = sedna(['feedback', '--sample', id1, '--label', 'b'], { home });
    assert.equal(r.code, 0, r.stderr);
    r = sedna(['feedback', '--sample', id2, '--label', 'zzz', '--new-class'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(labelOf(id2), 'zzz');
    r = sedna(['feedback', '--sample', other, '--label', 'anything'], { home });
    assert.equal(r.code, 0, `a task the active index does not hold is not checked: ${r.stderr}`);

    // --file: the line is skipped (reported); --strict: exit 2 and nothing stored
    const lf = join(t.dir, 'labels.jsonl');
    writeFileSync(lf, `{"id":"${id1}","label":"c"}\n{"id":"${id2}","label":"nope"}\n`);
    r = sedna(['feedback', '--file', lf, '--strict'], { home });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /labels\.jsonl:2: sample .*label "nope" is not a class of task "berlin"/);
    assert.equal(labelOf(id1), 'b', '--strict stored nothing');
    r = sedna(['feedback', '--file', lf], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /labelled 1 sample, 1 skipped/);
    assert.match(r.stderr, /labels\.jsonl:2: .*"nope"/);
    assert.equal(labelOf(id1), 'c');
    assert.equal(labelOf(id2), 'zzz');
  } finally {
    t.cleanup();
  }
});

test('feedback --strict: an unknown id exits 1 like --sample does, a bad line 2; both store nothing; help says so', () => {
  const t = tempDir();
  try {
    const { home } = edgeHome(t.dir);
    const [id] = logSamples(home, 1);
    const unknown = '0190aaaa-0000-7000-8000-000000000000';
    const lf = join(t.dir, 'labels.jsonl');
    writeFileSync(lf, `{"id":"${id}","label":"a"}\n{"id":"${unknown}","label":"b"}\n`);
    let r = sedna(['feedback', '--file', lf, '--strict'], { home });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`labels\\.jsonl:2: unknown sample id ${unknown} \\(--strict: no label stored\\)`));
    assert.equal(sedna(['feedback', '--sample', unknown, '--label', 'a'], { home }).code, 1, 'the same "not found" exit without --strict');
    writeFileSync(lf, `{"id":"${id}","label":"a"}\nnot json\n`);
    r = sedna(['feedback', '--file', lf, '--strict'], { home });
    assert.equal(r.code, 2, r.stderr);
    r = sedna(['samples', 'ls', '--json'], { home });
    assert.equal((JSON.parse(r.stdout) as { samples: { label: string | null }[] }).samples[0].label, null, 'nothing stored');
    const help = sedna(['feedback', '--help']).stdout.replace(/\s+/g, ' ');
    assert.match(help, /Exit 1 when a sample id is not found \(--sample, or --file --strict\)/);
    assert.match(help, /exit 2 for a bad line under --strict/);
  } finally {
    t.cleanup();
  }
});

test('task add without --labels keeps the replaced task\'s labels when the class count matches', () => {
  const t = tempDir();
  try {
    const { home } = edgeHome(t.dir);
    const labelsIn = (version: string) =>
      (JSON.parse(readFileSync(join(home, 'kb', version, 'index.json'), 'utf8')) as { tasks: { id: string; model: { labels: string[] } }[] }).tasks.find((x) => x.id === 'berlin')!.model.labels;
    const same = writeRandomMlp(t.dir, 'mlp2', [4, 6, 3], 9);
    let r = sedna(['task', 'add', same, '--task', 'berlin', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    let add = JSON.parse(r.stdout);
    assert.equal(add.replaced, true);
    assert.deepEqual(labelsIn(add.version), ['a', 'b', 'c'], 'the old labels are kept');
    assert.equal(add.labels_kept, true);

    const four = writeRandomMlp(t.dir, 'mlp4', [4, 6, 4], 9);
    r = sedna(['task', 'add', four, '--task', 'berlin', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    add = JSON.parse(r.stdout);
    assert.equal(add.labels_kept, false);
    assert.deepEqual(labelsIn(add.version), ['0', '1', '2', '3'], 'another class count: default labels');
    r = sedna(['task', 'add', same, '--task', 'berlin', '--labels', 'x,y,z', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(labelsIn(JSON.parse(r.stdout).version), ['x', 'y', 'z'], '--labels still wins');
    r = sedna(['task', 'add', four, '--task', 'berlin'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /new model has 4 classes, not 3: labels x,y,z not kept/);
  } finally {
    t.cleanup();
  }
});

test('kb publish with nothing changed is a no-op ("nothing changed since version N", exit 0); --force publishes anyway', () => {
  const t = tempDir();
  try {
    const data = join(t.dir, 'kb');
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    const kb = (args: string[]) => sedna(['kb', ...args, '--data', data]);
    const m1 = writeRandomMlp(t.dir, 'k1', [4, 8, 3], 1);
    assert.equal(kb(['task', 'add', m1, '--task', 'global', '--labels', 'a,b,c', '--fallback']).code, 0);
    let r = kb(['publish', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).version, 1);

    r = kb(['publish', '--note', 'only a note']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /nothing changed since version 1/);
    r = kb(['publish', '--json']);
    assert.deepEqual(recordFields(r.stdout), { unchanged: 1 });
    assert.ok(!existsSync(join(data, 'versions', '2')), 'no version 2');

    r = kb(['publish', '--force', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).version, 2);
    // a changed model is published
    const m2 = writeRandomMlp(t.dir, 'k2', [4, 8, 3], 2);
    assert.equal(kb(['task', 'add', m2, '--task', 'global', '--labels', 'a,b,c', '--fallback']).code, 0);
    r = kb(['publish', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).version, 3);
    assert.match(kb(['publish', '--help']).stdout.replace(/\s+/g, ' '), /--force publishes anyway/);
  } finally {
    t.cleanup();
  }
});

test('every kb command states the exit codes in --help', () => {
  for (const cmd of [
    ['device', 'ls'],
    ['device', 'revoke'],
    ['device', 'set'],
    ['samples', 'ls'],
    ['samples', 'export'],
    ['tasks'],
    ['publish'],
  ]) {
    const r = sedna(['kb', ...cmd, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Exit codes:\s+0 ok\s+1 failure\s+2 usage error/, `kb ${cmd.join(' ')} --help`);
    assert.match(r.stdout, /--data <dir>\s+KB data directory \(default: \$SEDNA_LL_KB_DATA\)/, `kb ${cmd.join(' ')} --help`);
  }
});
