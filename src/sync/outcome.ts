// How a `sedna-ll sync` run ended (run.ts decides), and the one mapping from that to the exit
// code a cron job sees (DESIGN.md):
//   0 everything pushed (or nothing pending) and the edge holds the newest KB version
//   3 the KB could not be reached and nothing was done (nothing lost: the outbox is untouched)
//   4 partial: some work done (batches acked, a version pulled), the rest pending; or --max-time
//     ran out while work remained; or the KB rejected samples for good in this run (they are
//     marked rejected and not re-sent, so the next run is not partial because of them)
//   5 the pulled index, signature or a model blob failed verification; nothing installed,
//     the active version untouched. Also: the pulled version failed its health check when
//     activated (rollout.activate auto): marked failed, the previous version stays active, the
//     reason in the summary's `trial` (DESIGN.md: verification failed (canary) -> 5)
//   6 another sync (or rollout) holds the lock (thrown before a run starts: commands/action.ts)
//   1 the KB refused the token (401/403), or answered something we cannot use. Auth failure is
//     NOT reported as "offline" (3): retrying never fixes a wrong or revoked token, so cron
//     monitoring must see a hard failure, not a transient one.
import { EXIT, type ExitCode } from '../errors.js';
import type { FailureKind } from './http.js';

export type SyncOutcome =
  /** nothing left to do */
  | { kind: 'done' }
  /** done, but the KB refused samples of this run for good */
  | { kind: 'rejected'; samples: number }
  /** the run stopped on `failure` (the first one, or a verification failure, which always wins) */
  | {
      kind: 'failed';
      failure: FailureKind | 'verify';
      message: string;
      /** batches acked, labels pushed or a version pulled before it stopped */
      didWork: boolean;
      /** the KB answered at least one byte */
      heardFromKb: boolean;
    };

export function syncExitCode(o: SyncOutcome): ExitCode {
  if (o.kind === 'done') return EXIT.OK;
  if (o.kind === 'rejected') return EXIT.PARTIAL;
  if (o.failure === 'verify') return EXIT.VERIFY;
  if (o.failure === 'auth' || o.failure === 'protocol') return EXIT.FAILURE;
  // --max-time while the KB never answered a single byte is "offline", not "partial": a cron
  // fleet with a dead KB must read 3 (nothing lost), as it does without --max-time
  if (o.failure === 'deadline') return o.didWork || o.heardFromKb ? EXIT.PARTIAL : EXIT.OFFLINE;
  return o.didWork ? EXIT.PARTIAL : EXIT.OFFLINE;
}

/** The one line a run that did not simply finish says on stderr (null: it did). */
export function outcomeMessage(o: SyncOutcome): string | null {
  if (o.kind === 'done') return null;
  if (o.kind === 'rejected') return `${o.samples} sample(s) rejected by the KB; marked rejected, not sent again (sedna-ll status; reasons in events)`;
  return o.message;
}
