// The machine output of a run (--json): exactly ONE compact JSON line, newline-terminated,
//   {"time": ISO-8601 UTC of the run's start, "device": edge device id | null, "command": "kb device ls",
//    "exit": 0, ...the command's fields, "error"?: {"code", "message"}}
// Commands add their fields with record(); action.ts run() writes the line when the action ends
// (also when it failed: then with exit and error), so no command prints JSON itself. Fields
// follow one naming rule (snake_case, ISO-8601 UTC times, sizes in bytes as numbers); every
// command's record is described in src/commands/run-records.ts and test/cli-json.test.ts holds
// them to it.
//
// Commands that stream data records on stdout (infer, samples export, kb samples export
// without -o) keep stdout for the data: their run record goes to stderr, as its last line.
import type { Command } from 'commander';
import { EXIT } from '../errors.js';

type Fields = Record<string, unknown>;

interface RunState {
  started: Date;
  fields: Fields;
  error: { exit: number; message: string } | null;
  /** write the record to stderr (the command streams data on stdout) */
  toStderr: boolean;
}

let state: RunState = { started: new Date(), fields: {}, error: null, toStderr: false };

/** Start a new run record (action.ts run() does, before the action). */
export function beginRecord(): void {
  state = { started: new Date(), fields: {}, error: null, toStderr: false };
}

/** Add fields to this run's record (merged at the top level; later values win). */
export function record(fields: object): void {
  Object.assign(state.fields, fields);
}

/** This run streams data on stdout: its record goes to stderr. */
export function recordToStderr(): void {
  state.toStderr = true;
}

/** A failure the command reports without throwing (sync: exit 4 with work done). */
export function recordError(exit: number, message: string): void {
  state.error = { exit, message: message.split('\n')[0] };
}

const CODE_NAMES = new Map<number, string>(Object.entries(EXIT).map(([k, v]) => [v, k.toLowerCase()]));

/** The stable error code of an exit code: "usage", "offline", "partial", "verify", "locked", "failure". */
export function errorCode(exit: number): string {
  return CODE_NAMES.get(exit) ?? 'failure';
}

/** "kb device ls" for that command (the program's own name left out). */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The device id of the edge home a run used (null for kb commands, or no readable home). */
async function deviceOf(command: string, home: string | undefined): Promise<string | null> {
  if (command === 'kb' || command.startsWith('kb ')) return null;
  try {
    const { readFileSync } = await import('node:fs');
    const { homePaths, resolveHome } = await import('../store/home.js');
    const c = JSON.parse(readFileSync(homePaths(resolveHome(home)).config, 'utf8')) as { device_id?: unknown };
    return typeof c.device_id === 'string' ? c.device_id : null;
  } catch {
    return null;
  }
}

/** Build the record of the run that just ended with `exit` (error: the thrown message, if any). */
export async function finishRecord(command: string, home: string | undefined, exit: number, thrown: string | null): Promise<string> {
  const err = thrown !== null ? { exit, message: thrown } : state.error;
  const rec: Fields = { time: state.started.toISOString(), device: await deviceOf(command, home), command, exit };
  for (const [k, v] of Object.entries(state.fields)) if (!(k in rec) && k !== 'error' && v !== undefined) rec[k] = v;
  // a command that ended non-zero without a message still says so in the record
  if (exit !== EXIT.OK) rec.error = { code: errorCode(exit), message: err?.message ?? `${command}: exit ${exit}` };
  return JSON.stringify(rec, isoTimes) + '\n';
}

// Times are ISO-8601 UTC in machine output. Domain records keep epoch ms (what SQLite stores and
// code compares); the conversion happens here, once, for every field that names a time.
const TIME_KEY = /(^|_)(at|time)$|^last_seen$/;
function isoTimes(key: string, value: unknown): unknown {
  return typeof value === 'number' && TIME_KEY.test(key) && value > 0 ? new Date(value).toISOString() : value;
}

/** Write the record line to stdout, or stderr for a streaming command. */
export function writeRecord(line: string): void {
  (state.toStderr ? process.stderr : process.stdout).write(line);
}

/**
 * The one-result pattern: with --json the fields go into the run record; else `line` (what the
 * command says to a person) on stdout, newline added.
 */
export function printResult(json: boolean | undefined, fields: object, line: string): void {
  if (json) return record(fields);
  process.stdout.write(line + '\n');
}

/**
 * The list pattern: with --json the rows go into the run record under `key`; else a table of
 * `columns` (header -> cell), or the line `empty` when there are no rows.
 */
export async function printList<R>(key: string, rows: R[], o: { json?: boolean; empty: string; columns: import('./table.js').Columns<R> }): Promise<void> {
  if (o.json) return record({ [key]: rows });
  if (!rows.length) return void process.stdout.write(o.empty + '\n');
  const { printRows } = await import('./table.js');
  await printRows(rows, o.columns);
}

/** "sedna-ll: " in the error colour of stderr (red on a terminal that takes colour). */
export async function errorPrefix(): Promise<string> {
  // color.ts only now: a run that succeeds never loads it
  const { paint } = await import('./color.js');
  return (await paint(process.stderr)).red('sedna-ll:');
}
