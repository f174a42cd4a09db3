// printList / printRows (src/commands/output.ts, table.ts) in process: the table a person reads
// and the --json run record a script reads, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beginRecord, finishRecord, printList } from '../src/commands/output.js';
import { printRows } from '../src/commands/table.js';

// plain output whatever the terminal: colour is decided per call from the environment
process.env.NO_COLOR = '1';
delete process.env.FORCE_COLOR;

/** What fn writes to stdout. */
async function stdoutOf(fn: () => Promise<void>): Promise<string> {
  const write = process.stdout.write;
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await fn();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

const rows = [
  { id: 'a', n: 12, parent: null as string | null, note: 'ok' },
  { id: 'longer-id', n: 3, parent: 'a', note: 'line\nbreak \x1b[2Jred' },
];
const columns = { ID: (r: (typeof rows)[number]) => r.id, N: (r: (typeof rows)[number]) => r.n, PARENT: (r: (typeof rows)[number]) => r.parent, NOTE: (r: (typeof rows)[number]) => r.note };

test('printList: a table with padded columns, "-" for null, control characters escaped, last column unpadded', async () => {
  const out = await stdoutOf(() => printList('things', rows, { empty: 'no things', columns }));
  assert.equal(out, ['ID         N   PARENT  NOTE', 'a          12  -       ok', 'longer-id  3   a       line\\x0abreak \\x1b[2Jred', ''].join('\n'));
});

test('printList: no rows prints the empty line; --json puts the rows into the run record and prints nothing', async () => {
  assert.equal(await stdoutOf(() => printList('things', [], { empty: 'no things', columns })), 'no things\n');
  beginRecord();
  assert.equal(await stdoutOf(() => printList('things', rows, { json: true, empty: 'no things', columns })), '');
  const rec = JSON.parse(await finishRecord('kb things', undefined, 0, null)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(rec), ['time', 'device', 'command', 'exit', 'things']);
  assert.deepEqual(rec.things, rows);
});

test('printRows: the header order is the columns order; a cell sees the row and the paint of stdout', async () => {
  const out = await stdoutOf(() => printRows([{ v: 1 }, { v: 22 }], { B: (r) => r.v * 2, A: (r, p) => p.bold(String(r.v)) }));
  assert.equal(out, 'B   A\n2   1\n44  22\n');
});
