// The one place that turns a command's result or error into output and an exit code.
// Errors print as one line "sedna-ll: <message>" on stderr; exitCodeFor is the one mapping from
// what went wrong (the error types of src/errors.ts) to the exit code (DESIGN.md).
// With --json the run's record (output.ts) is written when the action ends, failed or not.
import { type Command, InvalidArgumentError } from '../commander.js';
import { EXIT, type ExitCode, LockedError, OfflineError, UsageError, VerificationError } from '../errors.js';
import { beginRecord, commandPath, errorPrefix, finishRecord, writeRecord } from './output.js';

export { printList, printResult, record, recordError, recordToStderr } from './output.js';

export type Action<A extends unknown[]> = (...args: A) => Promise<number | void> | number | void;

/** Wrap a command action: awaits it, sets process.exitCode, writes the --json record, never throws. */
export function run<A extends unknown[]>(fn: Action<A>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    // optsWithGlobals: `kb versions diff --json` may land on the parent command (same option)
    const g = cmd.optsWithGlobals() as { json?: boolean; home?: string };
    beginRecord();
    let exit: number = EXIT.OK;
    let thrown: string | null = null;
    try {
      const code = await fn(...args);
      exit = typeof code === 'number' ? code : EXIT.OK;
    } catch (e) {
      const err = e as Error & { code?: unknown };
      exit = exitCodeFor(e);
      thrown = (err && err.message ? err.message : String(e)).split('\n')[0];
      process.stderr.write(`${await errorPrefix()} ${thrown}\n`);
      if (process.env.SEDNA_LL_DEBUG && err?.stack) process.stderr.write(err.stack + '\n');
    }
    if (g.json) writeRecord(await finishRecord(commandPath(cmd), g.home, exit, thrown));
    process.exitCode = exit;
  };
}

/** The exit code for an error a command ended with; any other error, ours or not, is 1. */
export function exitCodeFor(e: unknown): ExitCode {
  if (e instanceof UsageError) return EXIT.USAGE;
  if (e instanceof OfflineError) return EXIT.OFFLINE;
  if (e instanceof VerificationError) return EXIT.VERIFY;
  if (e instanceof LockedError) return EXIT.LOCKED;
  return EXIT.FAILURE;
}

/** Collect repeated options (--attr a=b --attr c=d). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parse a positive integer option or fail with a usage error naming it. */
export function intOption(name: string, min = 0, max?: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    // InvalidArgumentError: commander reports it and cli.ts turns it into exit 2 (a UsageError
    // thrown from an option parser escapes commander and would exit 1)
    if (!Number.isInteger(n) || n < min || (max !== undefined && n > max)) throw new InvalidArgumentError(`${name} "${v}": expected an integer >= ${min}${max !== undefined ? ` and <= ${max}` : ''}`);
    return n;
  };
}

/** Parse a number option or fail with a usage error naming it. */
export function numOption(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} "${v}": expected a number`);
    return n;
  };
}
