// Labels of outbox samples (feedback) and their way to the KB: attached as 'pending', sent with
// their sample or on their own, marked uploaded only if still the label that was sent (a
// correction made during a push stays pending).
import type { DB } from './db.js';
import type { OutboxAccounting } from './outbox-accounting.js';

export class OutboxLabels {
  constructor(
    private readonly db: DB,
    private readonly acct: OutboxAccounting,
  ) {}

  /** Attach labels (feedback): label_state becomes 'pending'. Returns the ids not found. */
  setLabels(items: readonly { id: string; label: string }[]): { updated: number; unchanged: number; unknown: string[] } {
    const upd = this.db.prepare(
      `UPDATE samples SET label = ?, label_state = 'pending', labelled_at = ? WHERE id = ? AND (label IS NOT ? OR label_state IS NULL)`,
    );
    const exists = this.db.prepare('SELECT 1 FROM samples WHERE id = ?').pluck();
    return this.db
      .transaction(() => {
        const now = Date.now();
        let updated = 0;
        let unchanged = 0;
        const unknown: string[] = [];
        for (const it of items) {
          if (upd.run(it.label, now, it.id, it.label).changes) updated++;
          else if (exists.get(it.id)) unchanged++;
          else unknown.push(it.id);
        }
        if (updated) this.acct.incr('labels_set', updated);
        return { updated, unchanged, unknown };
      })
      .immediate();
  }

  /** Labels waiting for upload whose sample the KB already has, oldest label first. */
  pendingLabels(limit: number): { id: string; label: string; labelledAt: number }[] {
    return (
      this.db
        .prepare(
          `SELECT id, label, labelled_at FROM samples WHERE label_state = 'pending' AND state = 'uploaded'
           ORDER BY labelled_at, id LIMIT ?`,
        )
        .all(Math.max(1, limit)) as { id: string; label: string; labelled_at: number }[]
    ).map((r) => ({ id: r.id, label: r.label, labelledAt: r.labelled_at }));
  }

  /**
   * Mark labels as uploaded. Pass {id, label} pairs as sent so a label changed meanwhile stays
   * pending; a bare id marks whatever label the row holds.
   */
  markLabelsUploaded(items: readonly (string | { id: string; label: string })[]): number {
    const any = this.db.prepare(`UPDATE samples SET label_state = 'uploaded' WHERE id = ? AND label_state = 'pending'`);
    const cas = this.db.prepare(`UPDATE samples SET label_state = 'uploaded' WHERE id = ? AND label_state = 'pending' AND label = ?`);
    return this.db
      .transaction(() => {
        let n = 0;
        for (const it of items) n += typeof it === 'string' ? any.run(it).changes : cas.run(it.id, it.label).changes;
        return n;
      })
      .immediate();
  }
}
