// The exit code of a sync run from its outcome (sync/outcome.ts), every row of the table a cron
// job relies on (the runs that reach each outcome are in sync-offline, sync-retry, sync-rejected,
// sync-reliability and key-rotation tests, with real processes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXIT } from '../src/errors.js';
import { type SyncOutcome, outcomeMessage, syncExitCode } from '../src/sync/outcome.js';

const failed = (failure: Extract<SyncOutcome, { kind: 'failed' }>['failure'], didWork: boolean, heardFromKb: boolean): SyncOutcome => ({ kind: 'failed', failure, message: `${failure} here`, didWork, heardFromKb });

test('each outcome maps to its exit code', () => {
  const rows: [SyncOutcome, number][] = [
    [{ kind: 'done' }, EXIT.OK],
    [{ kind: 'rejected', samples: 2 }, EXIT.PARTIAL],
    [failed('verify', true, true), EXIT.VERIFY],
    [failed('verify', false, false), EXIT.VERIFY],
    [failed('auth', false, true), EXIT.FAILURE],
    [failed('protocol', true, true), EXIT.FAILURE],
    [failed('unreachable', false, false), EXIT.OFFLINE],
    [failed('unreachable', false, true), EXIT.OFFLINE],
    [failed('unreachable', true, true), EXIT.PARTIAL],
    // --max-time: offline only when the KB never answered a byte
    [failed('deadline', false, false), EXIT.OFFLINE],
    [failed('deadline', false, true), EXIT.PARTIAL],
    [failed('deadline', true, true), EXIT.PARTIAL],
  ];
  for (const [o, code] of rows) assert.equal(syncExitCode(o), code, JSON.stringify(o));
});

test('the line a run says: none when done, the failure or the rejected count otherwise', () => {
  assert.equal(outcomeMessage({ kind: 'done' }), null);
  assert.match(outcomeMessage({ kind: 'rejected', samples: 3 })!, /^3 sample\(s\) rejected by the KB; marked rejected, not sent again/);
  assert.equal(outcomeMessage(failed('auth', false, true)), 'auth here');
});
