// The one place that turns a command's result or error into output and an exit code.
// Errors print as one line "sedna-ll: <message>" on stderr; CliError carries its exit code.
import { InvalidArgumentError } from 'commander';
import { CliError, EXIT } from '../format/exit-codes.js';

export type Action<A extends unknown[]> = (...args: A) => Promise<number | void> | number | void;

/** Wrap a command action: awaits it, sets process.exitCode, never throws. */
export function run<A extends unknown[]>(fn: Action<A>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = typeof code === 'number' ? code : EXIT.OK;
    } catch (e) {
      const err = e as Error & { code?: unknown };
      const code = e instanceof CliError ? e.code : EXIT.FAILURE;
      const msg = (err && err.message ? err.message : String(e)).split('\n')[0];
      process.stderr.write(`sedna-ll: ${msg}\n`);
      if (process.env.SEDNA_LL_DEBUG && err?.stack) process.stderr.write(err.stack + '\n');
      process.exitCode = code;
    }
  };
}

/** Print a value as one JSON document (for --json). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Collect repeated options (--attr a=b --attr c=d). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parse a positive integer option or fail with a usage error naming it. */
export function intOption(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    // InvalidArgumentError: commander reports it and cli.ts turns it into exit 2 (a CliError
    // thrown from an option parser escapes commander and would exit 1)
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} "${v}": expected an integer >= ${min}`);
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
