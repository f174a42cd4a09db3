// Ground truth for logged samples (`sedna-ll feedback`): parse label records and attach them.
// A labelled sample is worth more: it is kept longest under quota and its label goes to the KB
// on the next sync (label_state 'pending').
import { SAMPLE_ID_RULE, isSampleId } from '../format/protocol.js';
import { UsageError, BadRecordError, NotFoundError } from '../errors.js';
import type { DB } from './db.js';
import type { EdgeConfig, HomePaths } from './home.js';
import { Outbox } from './outbox.js';
import { activeVersion } from './versions.js';

export interface LabelItem {
  id: string;
  label: string;
  /** 1-based line in the input (0 for --sample) */
  line: number;
}


/** Check one label value; returns the reason it is bad, or null. */
export function badLabel(label: unknown): string | null {
  if (typeof label !== 'string' && typeof label !== 'number') return 'label must be a string';
  const s = String(label);
  if (s.length === 0 || s.length > 256) return 'label must be 1-256 characters';
  return null;
}

/** Parse labels.jsonl ({"id": ..., "label": ...} per line). Bad lines come back as one-line errors. */
export function parseLabelLines(text: string, what: string): { items: LabelItem[]; errors: string[] } {
  const items: LabelItem[] = [];
  const errors: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (!raw) continue;
    const where = `${what}:${i + 1}`;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      errors.push(`${where}: not valid JSON (${(e as Error).message})`);
      continue;
    }
    if (!o || typeof o !== 'object' || Array.isArray(o)) {
      errors.push(`${where}: expected an object {"id", "label"}`);
      continue;
    }
    const { id, label } = o as { id?: unknown; label?: unknown };
    if (!isSampleId(id)) {
      errors.push(`${where}: "id" must be a sample id (${SAMPLE_ID_RULE})`);
      continue;
    }
    const bad = badLabel(label);
    if (bad) {
      errors.push(`${where}: sample ${id}: ${bad}`);
      continue;
    }
    items.push({ id, label: String(label), line: i + 1 });
  }
  return { items, errors };
}

/** A label that is not one of its sample's task classes. */
export interface ForeignLabel {
  item: LabelItem;
  task: string;
  allowed: string[];
}

/**
 * Labels that are not a class of their sample's task in the active KB version. A typo
 * ("zzz" for a task with classes a,b,c) would be uploaded and make the trainer add a spurious
 * class, so the caller refuses these unless the user says the class is new (--new-class).
 * Samples of tasks the active index does not hold (or holds without labels) are not checked:
 * there is nothing to check them against. Unknown ids are left to setLabels.
 */
export function foreignLabels(paths: HomePaths, db: DB, items: readonly LabelItem[]): ForeignLabel[] {
  const active = activeVersion(paths, db);
  if (!active) return [];
  const classes = new Map(active.index.tasks.filter((t) => t.model.labels.length > 0).map((t) => [t.id, t.model.labels]));
  const taskOf = db.prepare('SELECT task FROM samples WHERE id = ?').pluck();
  const out: ForeignLabel[] = [];
  for (const item of items) {
    const task = taskOf.get(item.id) as string | undefined;
    const allowed = task === undefined ? undefined : classes.get(task);
    if (allowed && !allowed.includes(item.label)) out.push({ item, task: task!, allowed });
  }
  return out;
}

/** One-line reason for a ForeignLabel. */
export function describeForeign(f: ForeignLabel): string {
  return `sample ${f.item.id}: label "${f.item.label}" is not a class of task "${f.task}" (${f.allowed.join(', ')}); give --new-class if it is a new class`;
}

/** The first item whose sample id is not in the outbox (for --strict's all-or-nothing check before storing any label). */
export function firstUnknown(db: DB, items: readonly LabelItem[]): LabelItem | undefined {
  const known = db.prepare('SELECT 1 FROM samples WHERE id = ?').pluck();
  return items.find((it) => !known.get(it.id));
}

/**
 * Attach labels with the checks every caller needs. `file` names the input (undefined: one
 * --sample label, whose refusal is an error). strict: no label is stored unless every id is
 * known and every label allowed. A label outside its task's classes is refused unless newClass
 * (one label or strict: an error; else its line is skipped). Returns the outbox's counts and
 * every skipped line's reason (the parser's `errors` first).
 */
export function storeFeedback(
  h: { paths: HomePaths; db: DB; cfg: EdgeConfig },
  req: { items: LabelItem[]; errors: string[]; file: string | undefined; strict?: boolean; newClass?: boolean },
): { updated: number; unchanged: number; unknown: string[]; errors: string[] } {
  const { file } = req;
  const single = file === undefined;
  const errors = [...req.errors];
  let items = req.items;
  if (req.strict) {
    // all or nothing: check every id before storing any label
    const missing = firstUnknown(h.db, items);
    if (missing) throw new BadRecordError(`${file}:${missing.line}: unknown sample id ${missing.id} (--strict: no label stored)`);
  }
  if (!req.newClass) {
    const foreign = foreignLabels(h.paths, h.db, items);
    if (foreign.length && (single || req.strict)) {
      const f = foreign[0];
      throw new UsageError(`${single ? '' : `${file}:${f.item.line}: `}${describeForeign(f)}${single ? '' : ' (--strict: no label stored)'}`);
    }
    const refused = new Set(foreign.map((f) => f.item));
    for (const f of foreign) errors.push(`${file}:${f.item.line}: ${describeForeign(f)}`);
    items = items.filter((it) => !refused.has(it));
  }
  const r = new Outbox(h.db, h.paths, h.cfg).setLabels(items);
  const lineOf = new Map(items.map((it) => [it.id, it.line]));
  for (const id of r.unknown) errors.push(single ? `unknown sample id ${id}` : `${file}:${lineOf.get(id)}: unknown sample id ${id}`);
  if (single && r.unknown.length) throw new NotFoundError(`unknown sample id ${items[0].id} (not in the outbox: never logged, evicted, or deleted after upload)`);
  return { ...r, errors };
}
