// The one mapping from what went wrong to the process exit code (src/commands/action.ts) and the
// error types of src/errors.ts, in-process: the numbers are DESIGN.md's and scripts rely on them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { exitCodeFor, run } from '../src/commands/action.js';
import {
  BadRecordError,
  ConflictError,
  EXIT,
  LockedError,
  NotFoundError,
  OfflineError,
  ReportedError,
  UsageError,
  VerificationError,
} from '../src/errors.js';
import { NoTaskForAttrError, TaskTable } from '../src/format/allocate.js';

test('each error type maps to its documented exit code', () => {
  assert.equal(exitCodeFor(new UsageError('x')), 2);
  assert.equal(exitCodeFor(new OfflineError('x')), 3);
  assert.equal(exitCodeFor(new VerificationError('x')), 5);
  assert.equal(exitCodeFor(new LockedError('x')), 6);
  for (const e of [new ReportedError('x'), new NotFoundError('x'), new ConflictError('x'), new BadRecordError('x'), new Error('bug'), 'a string', null]) {
    assert.equal(exitCodeFor(e), EXIT.FAILURE, String(e));
  }
});

test('the exit codes are the documented numbers', () => {
  assert.deepEqual({ ...EXIT }, { OK: 0, FAILURE: 1, USAGE: 2, OFFLINE: 3, PARTIAL: 4, VERIFY: 5, LOCKED: 6 });
});

test('error types carry their name and no exit code', () => {
  const e = new VerificationError('bundle.tar: signature does not verify');
  assert.ok(e instanceof ReportedError && e instanceof Error);
  assert.equal(e.name, 'VerificationError');
  assert.equal(e.message, 'bundle.tar: signature does not verify');
  assert.equal((e as unknown as { code?: unknown }).code, undefined);
});

test('a sample no task can take is a BadRecordError (the pipeline skips it), not a fatal error', () => {
  const table = new TaskTable({ format: 1, version: 'v1', tasks: [], allocation: { method: 'attr', attr_keys: ['site'] } } as never);
  assert.throws(() => table.allocate({}, 'nope', () => new Float32Array(0)), (e: unknown) => e instanceof BadRecordError && /unknown task "nope"/.test(e.message));
  assert.throws(() => table.allocate({}, null, () => new Float32Array(0)), (e: unknown) => e instanceof BadRecordError && !(e instanceof NoTaskForAttrError));
  assert.ok(new NoTaskForAttrError('x') instanceof BadRecordError);
});

test('run() ends a command with the mapped exit code and one line on stderr', async (t) => {
  const saved = process.exitCode;
  const lines: string[] = [];
  t.mock.method(process.stderr, 'write', (chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
  try {
    for (const [err, code] of [
      [new LockedError('another sync is running (pid 1)'), 6],
      [new UsageError('--limit "x": expected an integer'), 2],
      [new Error('unexpected\nstack line'), 1],
    ] as const) {
      lines.length = 0;
      const program = new Command('sedna-ll').exitOverride();
      program.command('go').action(run(() => { throw err; }));
      await program.parseAsync(['node', 'sedna-ll', 'go']);
      assert.equal(process.exitCode, code, err.message);
      assert.equal(lines.length, 1, lines.join(''));
      assert.equal(lines[0], `sedna-ll: ${err.message.split('\n')[0]}\n`);
    }
  } finally {
    process.exitCode = saved;
  }
});
