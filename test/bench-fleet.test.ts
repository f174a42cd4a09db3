// bench:fleet cannot rot: its wire body is a valid push of the sync protocol, and the bench
// itself runs end to end with tiny numbers (10 devices, a kill -9 and restart mid-push, the
// audit) on the embedded SQLite backend. Numbers are not asserted (performance is the bench's
// business); the audit is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { PUSH_SAMPLES_SCHEMA, UPLOAD_SAMPLE_SCHEMA } from '../src/format/protocol.js';
import { readFrames, type FrameRecord } from '../src/format/sample-frames.js';
import { mulberry32 } from '../src/random.js';
import { makePayloadPool, makePushBody, sampleJson, uploadSample } from '../bench/lib/fleet/wire.js';
import { kbSupports, postgresMissingHere, rgwMissing } from '../bench/lib/fleet/backends.js';
import { ROOT, tempDir } from './helpers/cli.js';

test('the fleet bench pushes what the sync protocol accepts: sample text equals the UploadSample object', () => {
  const pool = makePayloadPool(4, 3072, 1);
  const now = 1_750_000_000_000;
  assert.deepEqual(JSON.parse(sampleJson(pool, 2, 'abc-123', 'site-4', 7, now)), uploadSample(pool, 2, 'abc-123', 'site-4', 7, now));
  const b = makePushBody(pool, 25, 'site-1', mulberry32(3));
  const body = JSON.parse(b.body.toString('utf8')) as { samples: { id: string; payload_b64: string }[] };
  const validate = new Ajv({ strict: false }).compile(PUSH_SAMPLES_SCHEMA);
  assert.ok(validate(body), JSON.stringify(validate.errors));
  assert.deepEqual(body.samples.map((s) => s.id), b.ids);
  assert.equal(new Set(b.ids).size, 25);
  assert.equal(Buffer.from(body.samples[0].payload_b64, 'base64').length, 3072);
});

test('the fleet bench pushes what the sync protocol accepts: frames records are the same samples', async () => {
  const pool = makePayloadPool(4, 3072, 1);
  const b = makePushBody(pool, 25, 'site-1', mulberry32(3), 'frames');
  const same = makePushBody(pool, 25, 'site-1', mulberry32(3), 'json');
  const json = (JSON.parse(same.body.toString('utf8')) as { samples: Record<string, unknown>[] }).samples;
  const validate = new Ajv({ strict: false }).compile(UPLOAD_SAMPLE_SCHEMA);
  const ids: string[] = [];
  async function* one() {
    yield b.body;
  }
  const recs: FrameRecord[] = [];
  for await (const batch of readFrames(one(), { maxRecordBytes: 1 << 20 })) recs.push(...batch);
  for (const r of recs) {
    assert.equal(r.error, undefined);
    const s = { id: r.id, ...(JSON.parse(r.meta!) as object), payload_b64: r.payload!.toString('base64') };
    assert.ok(validate(s), JSON.stringify(validate.errors));
    // the same random draws: the same sample as the JSON body's, but for id and created_at
    const j = json[ids.length];
    assert.deepEqual({ ...s, id: '', created_at: 0 }, { ...j, id: '', created_at: 0 });
    ids.push(r.id);
  }
  assert.deepEqual(ids, b.ids);
});

function runBench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'fleet.ts'), ...args], { cwd: ROOT, env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

interface Doc {
  results: { devices: number; baseline: Scenario | null; fleet: Scenario | null }[];
}
interface Scenario {
  backend: string;
  replicas: number;
  push: { framing: string; samples: number; resent_batches: number; kill: { acked_before: number } | null; cpu_ms_per_1000_samples: Record<string, number> };
  audit: { ok: boolean; problems: string[]; stored_rows: number; counter_samples_new: number; acked_before_kill: number; lost_across_kill: number };
  pull: {
    stream: { devices: number; failures: number; model_bytes: number; bytes_via_replicas: number } | null;
    presigned: { devices: number; failures: number; model_bytes: number; bytes_via_object_store: number } | null;
  };
}

function checkScenario(s: Scenario, devices: number, samples: number) {
  assert.ok(s.audit.ok, `audit of ${s.backend} x${s.replicas}: ${s.audit.problems.join('; ')}`);
  // the devices negotiated what the edge negotiates with this KB (binary frames)
  assert.equal(s.push.framing, 'frames');
  assert.equal(s.push.samples, samples);
  assert.equal(s.audit.stored_rows, samples);
  assert.equal(s.audit.counter_samples_new, samples);
  assert.ok(s.push.kill, 'a replica was killed mid-push');
  assert.ok(s.audit.acked_before_kill > 0 && s.audit.lost_across_kill === 0);
  assert.ok(Object.keys(s.push.cpu_ms_per_1000_samples).some((k) => k.startsWith('replica-')));
  assert.equal(s.pull.stream?.devices, devices);
  assert.equal(s.pull.stream?.failures, 0);
  // every model byte came through the replicas (plus the index answers)
  assert.ok(s.pull.stream!.bytes_via_replicas >= devices * s.pull.stream!.model_bytes);
}

test('bench:fleet runs end to end on the embedded backend and its audit passes', { timeout: 600_000 }, async () => {
  const t = tempDir('sedna-ll-bench-fleet-');
  try {
    const out = join(t.dir, 'fleet.json');
    const r = await runBench(['--devices', '10', '--batches', '3', '--batch-size', '10', '--resend', '0.2', '--model-mb', '1', '--only', 'baseline', '--json', '--out', out, '--max-minutes', '8']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Doc;
    const s = doc.results[0].baseline!;
    assert.equal(s.backend, 'sqlite');
    checkScenario(s, 10, 300);
  } finally {
    t.cleanup();
  }
});

/**
 * The distributed fleet this build and machine can run: PostgreSQL (required) with S3 blobs on
 * Ceph RGW when the build has presigned URLs. A build without --store skips; a machine without
 * the engines skips locally and FAILS under CI=true (.ci/run installs them).
 */
function fleetPlan(): { skip: string } | { blobs: 's3' | 'files' } {
  const s = kbSupports();
  if (!s.postgres) return { skip: 'this build of kb serve has no --store (PostgreSQL backend)' };
  const engines = postgresMissingHere() ?? (s.s3 ? rgwMissing() : null) ?? (findHaproxy() ? null : 'haproxy not found (apt-get install -y haproxy)');
  if (engines && process.env.CI === 'true') throw new Error(`${engines}: required when CI=true (.ci/run installs it)`);
  return engines ? { skip: engines } : { blobs: s.s3 ? 's3' : 'files' };
}

test('bench:fleet runs end to end on PostgreSQL (+ Ceph RGW), two replicas behind HAProxy, and its audit passes', { timeout: 600_000 }, async (t) => {
  const plan = fleetPlan();
  if ('skip' in plan) {
    process.stderr.write(`SKIPPED: ${plan.skip}\n`);
    return t.skip(plan.skip);
  }
  const tmp = tempDir('sedna-ll-bench-fleet-');
  try {
    const out = join(tmp.dir, 'fleet.json');
    const r = await runBench(['--devices', '10', '--batches', '3', '--batch-size', '10', '--resend', '0.2', '--model-mb', '1', '--only', 'fleet', '--fleet-store', 'postgres', '--fleet-blobs', plan.blobs, '--json', '--out', out, '--max-minutes', '8']);
    assert.equal(r.code, 0, r.stderr);
    const s = (JSON.parse(r.stdout) as Doc).results[0].fleet!;
    assert.equal(s.backend, plan.blobs === 's3' ? 'postgres+s3' : 'postgres');
    assert.equal(s.replicas, 2);
    checkScenario(s, 10, 300);
    if (plan.blobs === 's3') {
      assert.equal(s.pull.presigned?.devices, 10);
      assert.equal(s.pull.presigned?.failures, 0);
      assert.ok(s.pull.presigned!.bytes_via_object_store >= 10 * s.pull.presigned!.model_bytes);
    }
  } finally {
    tmp.cleanup();
  }
});

function findHaproxy(): boolean {
  return spawnSync('sh', ['-c', 'command -v haproxy']).status === 0;
}
