// One RFC 4180 line parser (src/format/csv.ts) for every CSV reader. `kb eval` used to split on
// every comma, so a quoted field holding a comma shifted the columns and the row was dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitCsvLine } from '../src/format/csv.js';
import { sedna, tempDir } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';

test('splitCsvLine: quoted commas and doubled quotes, empty fields, unterminated quote is an error', () => {
  assert.deepEqual(splitCsvLine('1,2,3'), ['1', '2', '3']);
  assert.deepEqual(splitCsvLine('a,"b,c","d""e",'), ['a', 'b,c', 'd"e', '']);
  assert.deepEqual(splitCsvLine('"",x'), ['', 'x']);
  assert.deepEqual(splitCsvLine(''), ['']);
  assert.throws(() => splitCsvLine('a,"b'), /unterminated quoted field/);
});

test('kb eval reads a quoted field holding commas as one field and reports an unterminated quote by line', () => {
  const t = tempDir('sedna-ll-csv-');
  try {
    const data = join(t.dir, 'kb');
    const kb = (args: string[]) => sedna(['kb', ...args, '--data', data]);
    assert.equal(sedna(['kb', 'init', '--data', data]).code, 0);
    const model = writeIdentityModel(t.dir, 'ident', 3, { softmax: true });
    let r = kb(['task', 'add', model, '--task', 'global', '--fallback', '--labels', 'a,b,c']);
    assert.equal(r.code, 0, r.stderr);
    r = kb(['publish']);
    assert.equal(r.code, 0, r.stderr);

    const csv = join(t.dir, 'eval.csv');
    // the quoted "site" values hold commas and quotes; the identity model predicts the largest feature
    writeFileSync(csv, ['site,label,f0,f1,f2', '"Berlin, Mitte",a,1,0,0', 'plain,b,0,1,0', '"Paris, ""Nord""",c,0,0,1', '"open,c,0,0,1'].join('\n') + '\n');
    r = kb(['eval', csv, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const ev = JSON.parse(r.stdout) as { samples: number; overall: { accuracy: number } };
    assert.equal(ev.samples, 3, 'both quoted rows are read, not dropped as "6 cells, header has 5"');
    assert.equal(ev.overall.accuracy, 1);
    assert.match(r.stderr, /:5: unterminated quoted field/, 'the broken row is reported with its line');
  } finally {
    t.cleanup();
  }
});
