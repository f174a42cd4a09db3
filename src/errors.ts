// Errors named for what happened. None carries an exit code: commands/action.ts is the one
// place that maps an error type to the process exit code (DESIGN.md) and prints its message.
// Exit codes of every command (scripts and cron rely on these numbers); a command returns one
// of them for results that are not errors (e.g. PARTIAL).
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  OFFLINE: 3, // KB unreachable; nothing lost
  PARTIAL: 4, // some work done, the rest is retried next time
  VERIFY: 5, // signature, checksum or canary verification failed
  LOCKED: 6, // another sync/rollout is running
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_HELP = `Exit codes:
  0 ok   1 failure   2 usage error   3 offline / KB unreachable (nothing lost)
  4 partial (rest retried next time)   5 verification failed   6 locked (another run active)`;

/**
 * An error sedna-ll raises on purpose: its message is the one line the operator sees (an
 * unexpected error, a bug, is anything else). Used as is when nothing more specific fits.
 */
export class ReportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The command line or an input the operator named is wrong: bad option, unreadable file. */
export class UsageError extends ReportedError {}

/** The KB cannot be reached; nothing stored was lost. */
export class OfflineError extends ReportedError {}

/** A signature, checksum or canary check failed; nothing unverified was installed. */
export class VerificationError extends ReportedError {}

/** Another process holds the lock of this operation (sync, rollout, training). */
export class LockedError extends ReportedError {}

/** One input record (sample, line, image) is unusable: a stream reports and skips it, or stops on it with --strict. */
export class BadRecordError extends ReportedError {}

/** What the operator asked for does not exist (a file, a task, a sample id, a version). */
export class NotFoundError extends ReportedError {}

/** The operation does not fit the current state (the thing already exists, the port is taken). */
export class ConflictError extends ReportedError {}
