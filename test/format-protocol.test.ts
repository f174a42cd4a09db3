// format/protocol.ts in process: the request schemas, compiled with the options the KB server
// checks bodies with (reject, never repair), accept what an edge sends and refuse malformed
// fields one by one; the one sample-id rule is the same in SAMPLE_ID_RE and in both schemas.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv, type ValidateFunction } from 'ajv';
import { DEVICE_REPORT_SCHEMA, PUSH_LABELS_SCHEMA, PUSH_SAMPLES_SCHEMA, SAMPLE_ID_RE, isSampleId } from '../src/format/protocol.js';
import { uuidv7 } from '../src/store/uuid7.js';

// the KB's options (src/kb/server/route-validators.ts, generated ahead of time): removeAdditional / coerceTypes / useDefaults off
const ajv = new Ajv({ removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, strict: false });
const pushSamples = ajv.compile(PUSH_SAMPLES_SCHEMA);
const pushLabels = ajv.compile(PUSH_LABELS_SCHEMA);
const report = ajv.compile(DEVICE_REPORT_SCHEMA);

const sample = (over: Record<string, unknown> = {}) => ({
  id: uuidv7(),
  task: 'global',
  attrs: { site: 'a' },
  payload_kind: 'f32',
  payload_b64: Buffer.from(Float32Array.from([1, 2]).buffer).toString('base64'),
  payload_sha: 'a'.repeat(64),
  pred_label: '1',
  scores: [0.2, 0.8],
  hard: true,
  hard_reasons: ['margin'],
  unseen: false,
  unseen_reason: null,
  kb_version: 3,
  created_at: Date.now(),
  ...over,
});

const refused = (v: ValidateFunction, body: unknown, re: RegExp) => {
  assert.equal(v(body), false, JSON.stringify(body).slice(0, 200));
  const e = v.errors![0];
  assert.match(`${e.instancePath} ${e.message}`, re);
};

test('sample ids: device UUIDv7s and import ids pass; the rule is 8-64 of A-Z a-z 0-9 -, in the regex and both schemas alike', () => {
  const ids = [uuidv7(), `imp-${'0'.repeat(40)}`, 'abcdefgh', 'A'.repeat(64), 'short-7', 'x'.repeat(65), 'has_underscore', 'has space1', 'ünicode-id', '', 'id:colon1'];
  for (const id of ids) {
    const want = id.length >= 8 && id.length <= 64 && /^[A-Za-z0-9-]+$/.test(id);
    assert.equal(SAMPLE_ID_RE.test(id), want, id);
    assert.equal(isSampleId(id), want, id);
    assert.equal(pushSamples({ samples: [sample({ id })] }), want, `push ${id}`);
    assert.equal(pushLabels({ labels: [{ id, label: 'cat' }] }), want, `labels ${id}`);
  }
  assert.equal(isSampleId(12345678), false);
});

test('push samples: what an edge sends passes (null task, payload_kind none without payload, labels); malformed fields are refused by name', () => {
  assert.equal(pushSamples({ samples: [sample(), sample({ task: null, payload_kind: 'none', payload_b64: undefined, label: 'cat', kb_version: null })] }), true, JSON.stringify(pushSamples.errors));
  assert.equal(pushSamples({ samples: [] }), true);
  refused(pushSamples, { samples: [sample({ payload_sha: 'A'.repeat(64) })] }, /payload_sha must match pattern/);
  refused(pushSamples, { samples: [sample({ payload_kind: 'gif' })] }, /payload_kind must be equal to one of the allowed values/);
  refused(pushSamples, { samples: [sample({ extra: 1 })] }, /must NOT have additional properties/);
  refused(pushSamples, { samples: [sample({ hard: 'true' })] }, /hard must be boolean/);
  refused(pushSamples, { samples: [sample({ kb_version: '3' })] }, /kb_version must be integer,null/);
  refused(pushSamples, { samples: [sample({ created_at: 1.5 })] }, /created_at must be integer/);
  refused(pushSamples, { samples: [sample({ attrs: { site: 1 } })] }, /attrs\/site must be string/);
  refused(pushSamples, { samples: [sample({ task: '' })] }, /task must NOT have fewer than 1 characters|must match exactly one schema|anyOf/);
  const { scores: _s, ...noScores } = sample();
  refused(pushSamples, { samples: [noScores] }, /must have required property 'scores'/);
  refused(pushSamples, { samples: Array.from({ length: 10_001 }, () => ({})) }, /samples must NOT have more than 10000 items/);
  refused(pushSamples, { samples: [sample()], more: true }, /must NOT have additional properties/);
});

test('push labels and device reports: label 1-256 characters; report trial result in its enum', () => {
  assert.equal(pushLabels({ labels: [{ id: uuidv7(), label: 'x' }] }), true);
  refused(pushLabels, { labels: [{ id: uuidv7(), label: '' }] }, /label must NOT have fewer than 1 characters/);
  refused(pushLabels, { labels: [{ id: uuidv7(), label: 'x'.repeat(257) }] }, /label must NOT have more than 256 characters/);
  refused(pushLabels, { labels: [{ id: uuidv7() }] }, /must have required property 'label'/);
  assert.equal(report({ active_version: null }), true);
  assert.equal(report({ active_version: 4, versions: [{ version: 4, state: 'active' }], trial: { version: 5, result: 'fail', reason: 'canary' }, pending_samples: 12 }), true);
  refused(report, { active_version: 4, trial: { version: 5, result: 'maybe' } }, /trial\/result must be equal to one of the allowed values/);
  refused(report, {}, /must have required property 'active_version'/);
});
