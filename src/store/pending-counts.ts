// What the outbox still holds, counted without the push code (outbox-reader.ts and the sample
// framing it loads): every sync reports these, including a --pull-only run that pushes nothing.
import type { DB } from './db.js';

/** Cheap counters (index lookups, no payload pages touched) for progress and the summary. */
export function pendingCounts(db: DB): { pending: number; labelsPending: number } {
  const pending = (db.prepare(`SELECT COUNT(*) AS n FROM samples WHERE state = 'pending'`).get() as { n: number }).n;
  const labelsPending = (db.prepare(`SELECT COUNT(*) AS n FROM samples WHERE label_state = 'pending'`).get() as { n: number }).n;
  return { pending, labelsPending };
}
