// Machine output (issue 13, parts 1-2): every command with --json prints exactly ONE compact JSON
// line (stdout; stderr for the data-streaming commands) that validates against its schema in
// src/commands/run-records.ts, follows the naming rule (snake_case keys, ISO-8601 times), and
// README's JSON examples validate too. Runs against a real `kb serve`, a real edge home, real
// ONNX models and SQLite files.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, sedna, tempDir, type RunResult } from './helpers/cli.js';
import { writeIdentityModel } from './helpers/models.js';
import { startTestKb, type TestKb } from './helpers/kb-server.js';
import { makeEdge, type Edge } from './helpers/sync-edge.js';
import { RECORD_COMMANDS, recordSchema } from '../src/commands/run-records.js';

const require = createRequire(import.meta.url);
const Ajv = require('ajv').default;
const ajv = new Ajv({ allErrors: true, strict: false });

/** Values under these keys are maps keyed by user data (attribute names, task ids, ...), not field names. */
const MAP_KEYS = new Set(['attrs', 'metrics', 'config', 'skipped', 'silhouettes', 'scores', 'notes', 'extra', 'last_report', 'detail', 'preprocessing', 'value', 'per_task', 'relation', 'checks', 'before', 'after', 'overall', 'samples_by']);
const TIME_KEY = /(^|_)(at|time)$|^last_seen$/;

function namingProblems(v: unknown, at = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => namingProblems(x, `${at}[${i}]`));
  if (!v || typeof v !== 'object') return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    const p = at ? `${at}.${k}` : k;
    if (!/^[a-z][a-z0-9_]*$/.test(k)) out.push(`${p}: key not snake_case`);
    if (TIME_KEY.test(k) && x !== null && !(typeof x === 'string' && /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(x))) out.push(`${p}: time not ISO-8601 UTC (${JSON.stringify(x)})`);
    if (!MAP_KEYS.has(k)) out.push(...namingProblems(x, p));
  }
  return out;
}

const seen = new Set<string>();

/** The one record line of a run: on stdout (stderr for streaming commands), validated. */
function check(r: RunResult, command: string, opts: { stream?: boolean; exit?: number } = {}): Record<string, unknown> {
  const where = opts.stream ? r.stderr : r.stdout;
  const lines = where.split('\n');
  const last = opts.stream ? lines.filter(Boolean).at(-1)! : where;
  if (!opts.stream) {
    assert.ok(where.endsWith('\n'), `${command}: record not newline-terminated: ${JSON.stringify(where)}`);
    assert.equal(lines.length, 2, `${command}: expected exactly one line on stdout, got ${JSON.stringify(where)} (stderr ${r.stderr})`);
  }
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(last);
  } catch {
    assert.fail(`${command}: not one JSON line: ${JSON.stringify(last)} (stderr ${r.stderr})`);
  }
  assert.equal(rec.command, command);
  assert.equal(rec.exit, r.code, `${command}: record exit vs process exit`);
  if (opts.exit !== undefined) assert.equal(r.code, opts.exit, `${command}: ${r.stderr}`);
  const validate = ajv.getSchema(recordSchema(command).$id as string) ?? ajv.compile(recordSchema(command));
  assert.ok(validate(rec), `${command}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(rec)}`);
  assert.deepEqual(namingProblems(rec), [], command);
  seen.add(command);
  return rec;
}

describe('--json run records', () => {
  let kb: TestKb;
  let edge: Edge;
  const t = tempDir('sedna-ll-json-');
  const model = writeIdentityModel(t.dir, 'id3', 3, { softmax: true });
  const e = (args: string[], input?: string) => sedna([...args, '--json'], { home: edge.home, input });
  const k = (args: string[], input?: string) => kb.cli([...args, '--json'], input);

  before(async () => {
    kb = await startTestKb({ deviceId: 'gw-1' });
    edge = makeEdge(kb, { deviceId: 'gw-1' });
  });
  after(async () => {
    await kb?.stop();
    edge?.cleanup();
    t.cleanup();
  });

  it('every command with a record prints one valid line; a failed run carries error {code, message}', () => {
    check(k(['task', 'add', model, '--task', 'global', '--labels', 'a,b,c', '--fallback']), 'kb task add', { exit: 0 });
    check(k(['publish']), 'kb publish', { exit: 0 });
    const sync = check(e(['sync']), 'sync', { exit: 0 });
    assert.equal(sync.device, 'gw-1');
    assert.equal(sync.pulled_version, 1);

    const rows = Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: `s${i}`, x: [0.34, 0.33, 0.33 + i * 1e-4] })).join('\n') + '\n';
    const inf = sedna(['infer', '--json', '--seed', '1'], { home: edge.home, input: rows });
    const ir = check(inf, 'infer', { stream: true, exit: 0 });
    assert.equal(ir.inferred, 20);
    assert.equal(inf.stdout.trim().split('\n').length, 20, 'stdout holds only the data lines');
    const ls = check(e(['samples', 'ls']), 'samples ls', { exit: 0 }) as { samples: { id: string }[] };
    check(e(['samples', 'stats']), 'samples stats', { exit: 0 });
    check(sedna(['samples', 'export', '--json'], { home: edge.home }), 'samples export', { stream: true, exit: 0 });
    check(e(['samples', 'export', '-o', join(t.dir, 'out.jsonl')]), 'samples export', { exit: 0 });
    check(e(['feedback', '--sample', ls.samples[0]?.id ?? 'nope', '--label', 'a']), 'feedback', { exit: ls.samples.length ? 0 : 1 });
    check(e(['status']), 'status', { exit: 0 });
    check(e(['sync']), 'sync', { exit: 0 });

    const m = check(e(['model', 'ls']), 'model ls', { exit: 0 }) as { versions: { id: string }[] };
    check(e(['model', 'verify']), 'model verify', { exit: 0 });
    const bundle = join(t.dir, 'v1.tar.gz');
    check(e(['model', 'export', m.versions[0].id, '-o', bundle]), 'model export', { exit: 0 });
    check(e(['task', 'add', model, '--task', 'local3']), 'task add', { exit: 0 });
    check(e(['model', 'rollback']), 'model rollback', { exit: 0 });
    check(e(['model', 'activate', m.versions[0].id]), 'model activate');
    check(e(['model', 'install', bundle]), 'model install', { exit: 0 });
    check(e(['model', 'prune', '--keep', '5']), 'model prune', { exit: 0 });
    check(e(['model', 'activate', 'no-such-version']), 'model activate', { exit: 2 });

    check(e(['config', 'get', 'rollout.activate']), 'config get', { exit: 0 });
    check(e(['config', 'set', 'upload.compress', 'gzip']), 'config set', { exit: 0 });
    check(e(['config', 'set', 'upload.compres', 'gzip']), 'config set', { exit: 2 });
    check(e(['config', 'unset', 'upload.compress']), 'config unset', { exit: 0 });
    check(e(['config', 'validate']), 'config validate', { exit: 0 });
    check(e(['config', 'show']), 'config show', { exit: 0 });
    const init = check(e(['init', '--max-outbox-mb', '100']), 'init', { exit: 0 });
    assert.equal(init.outbox_max_bytes, 100 * 1024 * 1024);
    // a parse error still answers with one record
    const bad = check(e(['sync', '--batch-size', 'abc']), 'sync', { exit: 2 });
    assert.equal((bad.error as { code: string }).code, 'usage');

    // KB side
    const kbInit = tempDir('sedna-ll-json-kb-');
    try {
      check(sedna(['kb', 'init', '--data', join(kbInit.dir, 'kb'), '--json']), 'kb init', { exit: 0 });
    } finally {
      kbInit.cleanup();
    }
    check(k(['device', 'add', 'gw-2']), 'kb device add', { exit: 0 });
    check(k(['device', 'ls']), 'kb device ls', { exit: 0 });
    check(k(['device', 'set', 'gw-2', '--channel', 'canary']), 'kb device set', { exit: 0 });
    check(k(['device', 'revoke', 'gw-2']), 'kb device revoke', { exit: 0 });
    check(k(['device', 'revoke', 'gw-nope']), 'kb device revoke', { exit: 2 });
    check(k(['samples', 'ls']), 'kb samples ls', { exit: 0 });
    const data = join(t.dir, 'train.jsonl');
    writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: `train-${String(i).padStart(4, '0')}`, x: [i % 3, 1, 0], label: 'abc'[i % 3], attrs: { site: 'x' } })).join('\n') + '\n');
    check(k(['samples', 'import', data]), 'kb samples import', { exit: 0 });
    writeFileSync(join(t.dir, 'labels.csv'), 'id,label\ntrain-0000,a\nnope-0000,b\n');
    check(k(['label', 'import', join(t.dir, 'labels.csv')]), 'kb label import', { exit: 0 });
    check(kb.cli(['samples', 'export', '--json']), 'kb samples export', { stream: true, exit: 0 });
    check(k(['samples', 'export', '-o', join(t.dir, 'kbout.jsonl')]), 'kb samples export', { exit: 0 });
    check(k(['tasks']), 'kb tasks', { exit: 0 });
    check(k(['train', '--when', 'labelled_new >= 100000']), 'kb train', { exit: 0 });
    check(k(['eval', data]), 'kb eval', { exit: 0 });
    check(k(['eval', data, '--kb-version', '99']), 'kb eval', { exit: 2 });
    check(k(['publish', '--force']), 'kb publish', { exit: 0 });
    check(k(['versions']), 'kb versions', { exit: 0 });
    check(k(['versions', 'diff', '1', '2']), 'kb versions diff', { exit: 0 });
    check(k(['versions', 'diff', '1', '99']), 'kb versions diff', { exit: 2 });
    check(k(['rounds']), 'kb rounds', { exit: 0 });
    check(k(['channel', 'add', 'canary']), 'kb channel add', { exit: 0 });
    check(k(['channel', 'ls']), 'kb channel ls', { exit: 0 });
    check(k(['rollout', '2', '--channel', 'canary']), 'kb rollout', { exit: 0 });
    check(k(['promote', '--from', 'canary', '--to', 'stable']), 'kb promote', { exit: 0 });
    check(k(['fleet']), 'kb fleet', { exit: 0 });
    check(k(['bundle', '2', '-o', join(t.dir, 'kb2.tar.gz')]), 'kb bundle', { exit: 0 });
    check(k(['keys', 'ls']), 'kb keys ls', { exit: 0 });
    const rot = check(k(['keys', 'rotate']), 'kb keys rotate', { exit: 0 });
    assert.equal(rot.last_version, 2);
    check(k(['keys', 'rotate', '--signing-key', join(t.dir, 'no-such.key')]), 'kb keys rotate', { exit: 2 });
    assert.equal((check(k(['keys', 'ls']), 'kb keys ls', { exit: 0 }).keys as unknown[]).length, 2);

    assert.deepEqual(RECORD_COMMANDS.filter((c) => !seen.has(c)), [], 'every command with a schema was run');
  });

  it("README's JSON examples are valid records of their command", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const examples = [...readme.matchAll(/```json record\n([\s\S]*?)```/g)].map((m) => m[1].trim());
    assert.ok(examples.length >= 3, 'README has record examples (```json record blocks)');
    for (const ex of examples) {
      const rec = JSON.parse(ex) as { command: string };
      const validate = ajv.compile({ ...recordSchema(rec.command), $id: undefined });
      assert.ok(validate(rec), `README example of "${rec.command}": ${ajv.errorsText(validate.errors)}`);
      assert.deepEqual(namingProblems(rec), [], rec.command);
    }
  });
});

