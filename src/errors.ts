// Exit codes of every command (DESIGN.md). Scripts and cron rely on these numbers.
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

/** An error that carries the exit code the CLI should end with. */
export class CliError extends Error {
  constructor(message: string, readonly code: ExitCode = EXIT.FAILURE) {
    super(message);
  }
}
