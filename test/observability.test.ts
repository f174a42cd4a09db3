// Operator observability (issue 13 part 6), on real servers: `kb serve` logs JSON lines with a
// request id and never a token; the KB's and the edge serve's /metrics pass `promtool check
// metrics` (Debian `prometheus`) and count what really happened (pushes, labels, inferences,
// evictions, the active version's trial).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { sedna, sednaSpawn, tempDir } from './helpers/cli.js';
import { startTestKb } from './helpers/kb-server.js';
import { bundleOf, computeCanary, generateSigningKeys, initEdge, inputs, makeVersion } from './helpers/rollout-fixtures.js';
import { editConfig, labelSamples, makeEdge, seedOutbox, sednaAsync } from './helpers/sync-edge.js';
import { promtoolProblems, requireProgram } from './helpers/system-tool.js';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths, loadConfig } from '../src/store/home.js';
import { Outbox, type OutboxCounts } from '../src/store/outbox.js';

/** Value of one sample line of a metrics page (name with its labels exactly as printed), or null. */
function metric(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return null;
}

test('kb serve: JSON log lines with a request id per request, no token in the log; /metrics passes promtool and counts pushes', async (t) => {
  const promtool = requireProgram(t, 'promtool', 'prometheus');
  const kb = await startTestKb();
  const edge = makeEdge(kb);
  t.after(async () => {
    await kb.stop();
    edge.cleanup();
  });
  // real traffic: a sync pushes samples and labels with the device token; an admin call with the
  // admin token; a wrong token; a caller's own request id
  const ids = seedOutbox(edge.home, 12, 64, { seed: 3 });
  // 2 labels travel with their samples, 3 come later through the label push
  labelSamples(edge.home, ids.slice(0, 2).map((id) => ({ id, label: 'a' })));
  for (const more of [[], ids.slice(2, 5)]) {
    labelSamples(edge.home, more.map((id) => ({ id, label: 'b' })));
    const sync = await sednaAsync(['sync', '--json'], { home: edge.home });
    assert.equal(sync.code, 0, sync.stderr);
  }
  const admin = await fetch(`${kb.url}/v1/admin/stats`, { headers: { authorization: `Bearer ${kb.adminToken}` } });
  assert.equal(admin.status, 200);
  const wrong = await fetch(`${kb.url}/v1/index`, { headers: { authorization: `Bearer x${kb.deviceToken}`, 'x-request-id': 'probe-42' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('x-request-id'), 'probe-42', 'the caller’s request id is echoed');
  // the KB's /metrics is the operator's: the admin token (401 without: kb-server.test.ts)
  const page = await fetch(`${kb.url}/metrics`, { headers: { authorization: `Bearer ${kb.adminToken}` } });
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await page.text();

  // ---- log ----
  await kb.stop({ keep: true }); // flushes and ends the log
  const log = kb.stderr();
  const lines = log.split('\n').filter((l) => l.trim());
  const records = lines.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      assert.fail(`log line is not JSON: ${l}`);
    }
  });
  for (const r of records) {
    assert.equal(typeof r.level, 'string');
    assert.match(String(r.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO-8601 UTC time');
  }
  const requests = records.filter((r) => r.msg === 'request');
  // the edge pushes binary sample frames to a KB that announces them (sync/negotiate.ts)
  const pushes = requests.filter((r) => r.route === '/v1/sample-frames');
  assert.ok(pushes.length >= 1, 'the push is logged');
  for (const r of pushes) assert.deepEqual([r.status, r.device, typeof r.ms], [200, kb.deviceId, 'number']);
  assert.ok(requests.some((r) => r.route === '/v1/labels' && r.status === 200), 'the label push is logged');
  const probe = requests.find((r) => r.req_id === 'probe-42');
  assert.deepEqual([probe?.status, probe?.error], [401, 'unknown device token']);
  const reqIds = requests.map((r) => r.req_id);
  assert.ok(reqIds.every((id) => typeof id === 'string' && id.length > 0), 'every request line has a req_id');
  assert.equal(new Set(reqIds).size, reqIds.length, 'request ids are unique');
  for (const secret of [kb.deviceToken, kb.adminToken]) assert.ok(!log.includes(secret), 'a token reached the log');
  assert.ok(!/authorization/i.test(log), 'no Authorization header in the log');

  // ---- metrics ----
  if (promtool) assert.equal(promtoolProblems(promtool, text), '', 'promtool check metrics');
  assert.ok(!/^sedna_kb_/m.test(text), 'old sedna_kb_ names are gone');
  const P = 'sedna_ll_knowledgebase_';
  assert.equal(metric(text, `${P}samples_received_total`), 12);
  assert.equal(metric(text, `${P}samples_inserted_total`), 12);
  assert.equal(metric(text, `${P}samples`), 12, 'stored samples: the cached total plus this server’s inserts');
  assert.equal(metric(text, `${P}samples_labelled`), 5);
  assert.equal(metric(text, `${P}devices_active`), 1);
  assert.ok(metric(text, `${P}push_duration_seconds_count{kind="samples"}`)! >= 1, 'push latency histogram');
  assert.equal(metric(text, `${P}http_requests_total{method="GET",route="/v1/index",status="401"}`), 1);
  assert.ok(metric(text, `${P}http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/sample-frames"}`)! >= 1, 'request latency histogram');
  assert.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics');
  assert.match(text, /^nodejs_heap_size_used_bytes /m);
});

test('kb serve --log-level warn: no request lines; a bad --log-level is a usage error', async (t) => {
  const kb = await startTestKb({ serveArgs: ['--log-level', 'warn'] });
  t.after(() => kb.stop());
  assert.equal((await fetch(`${kb.url}/healthz`)).status, 200);
  await kb.stop({ keep: true });
  assert.equal(kb.stderr().trim(), '');
  const bad = kb.cli(['serve', '--log-level', 'loud']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--log-level/);
});

// ---- edge serve ----

function get(port: number, path: string, method = 'GET', body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) resolve((JSON.parse(out.slice(0, i)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

test('edge serve /metrics: passes promtool; inference histogram, outbox depth, evictions and the trial match the home', async (t) => {
  const promtool = requireProgram(t, 'promtool', 'prometheus');
  const tmp = tempDir('sedna-ll-obs-edge-');
  t.after(() => tmp.cleanup());
  const keys = generateSigningKeys();
  const home = join(tmp.dir, 'home');
  const TRIAL = 100_000; // stays on trial for the whole test
  initEdge(home, keys, { trial_inferences: TRIAL, trial_rate_factor: 1.5 });
  // a tiny outbox quota: logging hard samples evicts older ones
  editConfig(home, (c) => (c.outbox.max_mb = 0.002));
  const v = makeVersion(keys, 1, [{ id: 'global', seed: 5 }]);
  const bundle = await bundleOf(v, join(tmp.dir, 'v1.tar.gz'), await computeCanary(v, tmp.dir));
  assert.equal(sedna(['model', 'install', bundle], { home }).code, 0);
  const act = sedna(['model', 'activate', '1', '--json'], { home });
  assert.equal(JSON.parse(act.stdout).result, 'trial', act.stderr);

  const child = sednaSpawn(['serve', '--port', '0', '--seed', '1'], { home });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const port = await listeningPort(child);
  const N = 60;
  const r = await get(port, '/infer', 'POST', JSON.stringify([...inputs(N, 7).map((x) => ({ x })), { x: [1] }]));
  assert.equal(r.status, 200);
  const text = (await get(port, '/metrics')).text;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;

  if (promtool) assert.equal(promtoolProblems(promtool, text), '', 'promtool check metrics');
  const P = 'sedna_ll_edge_';
  assert.equal(metric(text, `${P}inference_duration_seconds_count`), 1, 'one /infer request');
  assert.equal(metric(text, `${P}inference_records_total{outcome="ok"}`), N);
  assert.equal(metric(text, `${P}inference_records_total{outcome="error"}`), 1);
  assert.equal(metric(text, `${P}http_requests_total{route="/infer",status="200"}`), 1);
  // one request: one batch; its logged samples waited for one fdatasync (none if all were evicted)
  assert.equal(metric(text, `${P}serve_batches_total`), 1);
  assert.equal(metric(text, `${P}serve_batched_requests_total`), 1);
  assert.equal(metric(text, `${P}outbox_fsyncs_total`), r.text.includes('"logged":true') ? 1 : 0);
  assert.equal(metric(text, `${P}active_version_info{version="1"}`), 1);
  assert.equal(metric(text, `${P}trial_phase{phase="observing"}`), 1);
  assert.equal(metric(text, `${P}trial_phase{phase="none"}`), 0);
  assert.equal(metric(text, `${P}trial_inferences`), N, 'every inferred record counts toward the trial');
  assert.equal(metric(text, `${P}trial_required_inferences`), TRIAL);
  // the outbox numbers are the home's own, read through the store after the server stopped
  const db = openEdgeDb(homePaths(home).db);
  let c: OutboxCounts;
  try {
    c = new Outbox(db, homePaths(home), loadConfig(home)).counts();
  } finally {
    db.close();
  }
  assert.ok(c.evicted.count > 0, 'the tiny quota evicted samples');
  assert.equal(metric(text, `${P}outbox_evicted_samples_total`), c.evicted.count);
  assert.equal(metric(text, `${P}outbox_evicted_bytes_total`), c.evicted.bytes);
  assert.equal(metric(text, `${P}outbox_samples{state="pending"}`), c.pending);
  assert.equal(metric(text, `${P}outbox_bytes`), c.bytes);
  assert.equal(metric(text, `${P}outbox_quota_bytes`), c.maxBytes);
  assert.match(text, /^process_resident_memory_bytes /m, 'default process metrics');
});
