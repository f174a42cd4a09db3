// kb/samples-io.ts importLabels in process on a real SQLite KB store: ids follow the one
// sample-id rule (format/protocol.ts); a malformed id is a bad line naming the id and the rule,
// a well-formed id the KB does not have is "unknown".
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kbPaths } from '../src/kb/paths.js';
import { exportSamples, importLabels, importSamples } from '../src/kb/samples-io.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import { tempDir } from './helpers/cli.js';
import { KB_BACKENDS, stopBackends } from './helpers/kb-backends.js';

after(stopBackends);

test('label import: the sample-id rule decides bad lines; unknown well-formed ids are reported as unknown', async () => {
  const t = tempDir('sedna-ll-labels-');
  const store = new SqliteKbStore(kbPaths(join(t.dir, 'kb')));
  try {
    const p = Buffer.from(new Float32Array([1, 2]).buffer);
    const base = { task: 't', attrs: {}, payload_kind: 'f32' as const, payload: p, payload_sha: createHash('sha256').update(p).digest('hex'), pred_label: null, scores: [], hard: false, hard_reasons: [], unseen: false, unseen_reason: null, kb_version: null, created_at: 0, label: null };
    await store.putSamples(null, [{ ...base, id: 'sample-0001' }]);
    const file = join(t.dir, 'labels.jsonl');
    const lines = [
      { id: 'sample-0001', label: 'cat' },
      { id: 'sample-9999', label: 'dog' }, // well-formed, not on the KB
      { id: 'short', label: 'x' }, // 5 characters
      { id: 'has_underscore1', label: 'x' },
      { id: 12345678, label: 'x' }, // a number, not a string id
      { label: 'x' },
    ];
    writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const bad: string[] = [];
    const r = await importLabels(store, file, { onBad: (line, reason) => bad.push(`${line}: ${reason}`) });
    assert.deepEqual([r.lines, r.stored, r.newly_labelled, r.unknown, r.skipped], [6, 1, 1, ['sample-9999'], 4]);
    assert.deepEqual(bad, [
      '3: "id" "short": not a sample id (8-64 characters of A-Z a-z 0-9 -)',
      '4: "id" "has_underscore1": not a sample id (8-64 characters of A-Z a-z 0-9 -)',
      '5: "id" 12345678: not a sample id (8-64 characters of A-Z a-z 0-9 -)',
      '6: missing "id"',
    ]);
  } finally {
    await store.close();
    t.cleanup();
  }
});

// "no task" (an edge that had no task for a sample; an import that names none) is null in every
// output and input, on both backends: listed as null, exported as "task": null, and the export
// imports into another KB as it was (the stored form of "no task" is the store's business).
for (const backend of KB_BACKENDS) {
  describe(`no task is null in and out: ${backend.name}`, { skip: backend.skip }, () => {
    test('edge sample with task null, import without a task: null in list and export; export -> import keeps them', async () => {
      const a = await backend.open();
      const b = await backend.open();
      const t = tempDir('sedna-ll-notask-');
      try {
        const p = Buffer.from(new Float32Array([1, 2]).buffer);
        const edge = { id: 'edge-0001', task: null, attrs: { site: 'x' }, payload_kind: 'f32' as const, payload: p, payload_sha: createHash('sha256').update(p).digest('hex'), pred_label: null, scores: [], hard: false, hard_reasons: [], unseen: true, unseen_reason: 'attr', kb_version: null, created_at: 0 };
        assert.equal((await a.store.putSamples('dev-1', [edge])).inserted, 1);
        const imp = join(t.dir, 'imp.jsonl');
        writeFileSync(imp, [{ id: 'imp-notask-01', x: [3, 4], label: 'c' }, { id: 'imp-tasked-01', x: [5, 6], task: 't1' }, { id: 'imp-nulltask-1', x: [7, 8], task: null }].map((l) => JSON.stringify(l)).join('\n') + '\n');
        const bad: string[] = [];
        const r = await importSamples(a.store, imp, { onBad: (n, reason) => bad.push(`${n}: ${reason}`) });
        assert.deepEqual([r.imported, bad], [3, []]);
        const tasks = async (s: typeof a.store) => Object.fromEntries((await s.listSamples({})).map((x) => [x.id, x.task]));
        const want = { 'edge-0001': null, 'imp-notask-01': null, 'imp-tasked-01': 't1', 'imp-nulltask-1': null };
        assert.deepEqual(await tasks(a.store), want);

        const out = join(t.dir, 'export.jsonl');
        const w = createWriteStream(out);
        assert.equal(await exportSamples(a.store, w), 4);
        await new Promise<void>((res) => w.end(res));
        const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(Object.fromEntries(lines.map((l) => [l.id, l.task])), want);

        const bad2: string[] = [];
        const r2 = await importSamples(b.store, out, { onBad: (n, reason) => bad2.push(`${n}: ${reason}`) });
        assert.deepEqual([r2.imported, bad2], [4, []]);
        assert.deepEqual(await tasks(b.store), want);
        // old rows: "no task" as the store kept it before reads as null too
        assert.equal((await b.store.getSample('edge-0001'))!.task, null);
      } finally {
        await a.cleanup();
        await b.cleanup();
        t.cleanup();
      }
    });
  });
}
