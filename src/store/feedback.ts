// Ground truth for logged samples (`sedna-ll feedback`): parse label records and attach them.
// A labelled sample is worth more: it is kept longest under quota and its label goes to the KB
// on the next sync (label_state 'pending').

export interface LabelItem {
  id: string;
  label: string;
  /** 1-based line in the input (0 for --sample) */
  line: number;
}

const ID_RE = /^[A-Za-z0-9-]{1,64}$/;

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
    if (typeof id !== 'string' || !ID_RE.test(id)) {
      errors.push(`${where}: "id" must be a sample id`);
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
