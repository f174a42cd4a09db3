// printList / printRows (src/commands/output.ts, table.ts): the table a person reads and the
// --json run record a script reads, byte for byte. Rendered in a child process (this process's
// stdout carries the test runner's own reports).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tempDir } from './helpers/cli.js';

/** stdout of `body` run as a module with printList, printRows, beginRecord and finishRecord in scope. */
function render(body: string): string {
  const tmp = tempDir('sedna-ll-output-');
  try {
    const file = join(tmp.dir, 'render.mts');
    const src = (f: string) => JSON.stringify(pathToFileURL(resolve('src', f)).href);
    writeFileSync(file, `import { beginRecord, finishRecord, printList } from ${src('commands/output.ts')};\nimport { printRows } from ${src('commands/table.ts')};\n${body}\n`);
    // plain output whatever the terminal
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.FORCE_COLOR;
    return execFileSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', env });
  } finally {
    tmp.cleanup();
  }
}

const ROWS = `const rows = [{ id: 'a', n: 12, parent: null, note: 'ok' }, { id: 'longer-id', n: 3, parent: 'a', note: 'line\\nbreak \\x1b[2Jred' }];
const columns = { ID: (r) => r.id, N: (r) => r.n, PARENT: (r) => r.parent, NOTE: (r) => r.note };`;

test('printList: a table with padded columns, "-" for null, control characters escaped, last column unpadded; the empty line without rows', () => {
  const out = render(`${ROWS}\nawait printList('things', rows, { empty: 'no things', columns });\nawait printList('things', [], { empty: 'no things', columns });`);
  assert.equal(out, ['ID         N   PARENT  NOTE', 'a          12  -       ok', 'longer-id  3   a       line\\x0abreak \\x1b[2Jred', 'no things', ''].join('\n'));
});

test('printList --json: the rows go into the run record under their key; nothing else is printed', () => {
  const out = render(`${ROWS}\nbeginRecord();\nawait printList('things', rows, { json: true, empty: 'no things', columns });\nprocess.stdout.write(await finishRecord('kb things', undefined, 0, null));`);
  const lines = out.split('\n');
  assert.equal(lines.length, 2, out);
  const rec = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.deepEqual(Object.keys(rec), ['time', 'device', 'command', 'exit', 'things']);
  assert.deepEqual(rec.things, [{ id: 'a', n: 12, parent: null, note: 'ok' }, { id: 'longer-id', n: 3, parent: 'a', note: 'line\nbreak \x1b[2Jred' }]);
});

test('printRows: the header order is the columns order; a cell gets the row and the paint of stdout', () => {
  assert.equal(render(`await printRows([{ v: 1 }, { v: 22 }], { B: (r) => r.v * 2, A: (r, p) => p.bold(String(r.v)) });`), 'B   A\n2   1\n44  22\n');
});
