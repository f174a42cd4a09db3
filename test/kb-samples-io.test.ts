// kb/samples-io.ts importLabels in process on a real SQLite KB store: ids follow the one
// sample-id rule (format/protocol.ts); a malformed id is a bad line naming the id and the rule,
// a well-formed id the KB does not have is "unknown".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kbPaths } from '../src/kb/paths.js';
import { importLabels } from '../src/kb/samples-io.js';
import { SqliteKbStore } from '../src/kb/sqlite-store.js';
import { tempDir } from './helpers/cli.js';

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
