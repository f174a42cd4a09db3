// The KB server's route groups (src/kb/server/), in process over real HTTP on loopback with a
// real SQLite KB: which token each group takes, the shared error shape, gzip bodies, query
// integers, and decodeSample's refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { addDevice, revokeDevice } from '../src/kb/devices.js';
import { initKb } from '../src/kb/init.js';
import { openKbStore } from '../src/kb/open.js';
import { startKbServer } from '../src/kb/server.js';
import { decodeSample } from '../src/kb/server/device-routes.js';
import { queryInt } from '../src/kb/server/http.js';
import { tempDir } from './helpers/cli.js';
import { wireSample } from './helpers/kb-sample.js';

const wire = (id: string, payload = Buffer.from([1, 2, 3, 4])) => wireSample(id, payload, { attrs: { Site: 'A' }, pred_label: 'a', scores: [1] });

test('decodeSample: a usable sample is kept with normalised attrs; payload mismatches are refused in one line', () => {
  const ok = decodeSample(wire('s-00000001'));
  assert.equal(typeof ok, 'object');
  assert.equal((ok as { source: string }).source, 'edge');
  assert.deepEqual(Buffer.from((ok as { payload: Buffer }).payload), Buffer.from([1, 2, 3, 4]));
  assert.equal(decodeSample({ ...wire('s-00000002'), payload_sha: '0'.repeat(64) }), 'payload_sha does not match the payload');
  assert.equal(decodeSample({ ...wire('s-00000003'), payload_kind: 'none' }), 'payload_b64 given with payload_kind "none"');
  const { payload_b64: _, ...noPayload } = wire('s-00000004');
  assert.equal(decodeSample(noPayload), 'payload_b64 missing for payload_kind "f32"');
});

test('queryInt: absent or empty gives the default, a bad value names the parameter, max caps', () => {
  assert.equal(queryInt('limit', undefined, 7), 7);
  assert.equal(queryInt('limit', '', null), null);
  assert.equal(queryInt('limit', '20000', 1000, 10000), 10000);
  assert.throws(() => queryInt('after', '-1', 0), (e: Error & { statusCode?: number }) => e.statusCode === 400 && e.message === 'after "-1": expected an integer >= 0');
  assert.throws(() => queryInt('since', '1.5', 0), /since "1.5": expected an integer >= 0/);
});

test('route groups: device routes and blobs take a device token, admin routes the admin token; errors are one JSON line', async (t) => {
  const tmp = tempDir('sedna-ll-routes-');
  const dir = join(tmp.dir, 'kb');
  const { admin_token } = await initKb(dir);
  const store = await openKbStore(dir);
  const dev = await addDevice(store, 'edge-1');
  const gone = await addDevice(store, 'edge-2');
  await revokeDevice(store, 'edge-2');
  const srv = await startKbServer(store, { port: 0 });
  // server, then store, then files
  t.after(async () => {
    await srv.close();
    await store.close();
    tmp.cleanup();
  });
  const call = async (path: string, token: string | null, init: RequestInit = {}) => {
    const r = await fetch(srv.url + path, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) } });
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
  };

  // every answer carries its request id, also a refusal
  const health = await call('/healthz', null);
  assert.deepEqual([health.status, health.body], [200, { ok: true }]);
  assert.ok(health.headers.get('x-request-id'));

  for (const path of ['/v1/index', '/v1/blobs/' + 'a'.repeat(64)]) {
    assert.deepEqual(await call(path, null).then((r) => [r.status, r.body]), [401, { error: 'missing Authorization: Bearer <device token>' }], path);
    assert.deepEqual(await call(path, admin_token).then((r) => [r.status, r.body]), [401, { error: 'unknown device token' }], `${path}: the admin token is not a device token`);
    assert.deepEqual(await call(path, gone.token).then((r) => [r.status, r.body]), [401, { error: 'device "edge-2" is revoked' }], path);
  }
  for (const path of ['/v1/admin/devices', '/metrics']) {
    assert.deepEqual(await call(path, dev.token).then((r) => [r.status, r.body]), [401, { error: 'not the admin token' }], `${path}: a device token is not the admin token`);
  }
  const devices = await call('/v1/admin/devices', admin_token);
  assert.equal(devices.status, 200);
  assert.deepEqual((devices.body!.devices as { id: string }[]).map((d) => d.id).sort(), ['edge-1', 'edge-2']);

  // device routes: nothing published yet -> 304; a bad query integer -> 400 naming it
  assert.equal((await call('/v1/index', dev.token)).status, 304);
  assert.deepEqual(await call('/v1/index?since=x', dev.token).then((r) => [r.status, r.body]), [400, { error: 'since "x": expected an integer >= 0' }]);
  assert.deepEqual(await call('/v1/blobs/XYZ', dev.token).then((r) => [r.status, r.body]), [400, { error: 'blob "XYZ": expected a lower-case sha256' }]);
  assert.equal((await call('/v1/blobs/' + 'a'.repeat(64), dev.token)).status, 404);

  // a gzip push goes through the shared decoding and lands in the store; the admin sees it
  const body = gzipSync(JSON.stringify({ samples: [wire('s-00000010'), { ...wire('s-00000011'), payload_sha: '0'.repeat(64) }] }));
  const push = await call('/v1/samples', dev.token, { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
  assert.equal(push.status, 200);
  assert.deepEqual(push.body, { stored: ['s-00000010'], rejected: [{ id: 's-00000011', reason: 'payload_sha does not match the payload' }] });
  const listed = await call('/v1/admin/samples?limit=5', admin_token);
  assert.deepEqual((listed.body!.samples as { id: string }[]).map((s) => s.id), ['s-00000010']);
  assert.deepEqual(await call('/v1/admin/samples?after=-2', admin_token).then((r) => [r.status, r.body]), [400, { error: 'after "-2": expected an integer >= 0' }]);

  // shared refusals: unknown encoding, bad JSON, schema, unknown endpoint
  const enc = await call('/v1/samples', dev.token, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'content-encoding': 'br' } });
  assert.deepEqual([enc.status, enc.body], [415, { error: 'unsupported Content-Encoding "br" (use gzip or none)' }]);
  const bad = await call('/v1/samples', dev.token, { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } });
  assert.equal(bad.status, 400);
  assert.match(String(bad.body!.error), /^body is not valid JSON: /);
  const schema = await call('/v1/report', dev.token, { method: 'POST', body: '{"nope":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(schema.status, 400);
  assert.match(String(schema.body!.error), /^invalid request: /);
  assert.deepEqual(await call('/v1/nothing?x=1', null).then((r) => [r.status, r.body]), [404, { error: 'no such endpoint: GET /v1/nothing' }]);
});
