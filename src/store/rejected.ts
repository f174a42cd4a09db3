// Samples the KB refused for good: its push reply lists them in `rejected` with a reason (an id
// that belongs to another device, e.g. a cloned gateway image; a sample failing the KB's checks).
// Re-sending them cannot succeed, so they leave the pending set: state 'rejected' with the KB's
// reason (column reject_reason, migration 3). They are never sent again, count in `status` and
// `sync --json`, and the quota evicts them like uploaded ones. The data stays for inspection.
import type { DB } from './db.js';

/** Mark pending samples rejected with the KB's reason; returns how many were marked. */
export function markRejected(db: DB, items: readonly { id: string; reason: unknown }[]): number {
  if (items.length === 0) return 0;
  // a pending label of such a sample can never be uploaded either: it stops counting as pending
  const mark = db.prepare(
    `UPDATE samples SET state = 'rejected', reject_reason = ?, label_state = CASE WHEN label_state = 'pending' THEN NULL ELSE label_state END
     WHERE id = ? AND state = 'pending'`,
  );
  return db.transaction(() => {
    let n = 0;
    for (const r of items) n += mark.run(String(r.reason ?? 'rejected by the KB').slice(0, 500), String(r.id)).changes;
    return n;
  })();
}

/** Samples marked rejected so far. */
export function rejectedCount(db: DB): number {
  return db.prepare(`SELECT COUNT(*) FROM samples WHERE state = 'rejected'`).pluck().get() as number;
}
