// Attribute normalisation shared by edge allocation and cloud task definition.
// Sedna's TaskAllocationByDataAttr / TaskDefinitionByDataAttr: values are stringified,
// "_" becomes "-", spaces are removed, and the values of the task's attribute keys are
// joined with "_" (in key order) to form the task's attribute key.

export type RawAttrs = Record<string, string | number | boolean | null | undefined>;

/** Normalise one attribute value the way Sedna does. */
export function normaliseValue(v: unknown): string {
  return String(v).replace(/_/g, '-').replace(/\s+/g, '');
}

/** Normalise keys and values of a record: keys trimmed and lower-cased, values per Sedna. */
export function normaliseAttrs(attrs: RawAttrs | undefined | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!attrs) return out;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    out[k.trim().toLowerCase()] = normaliseValue(v);
  }
  return out;
}

/**
 * The task key of a sample for the given attribute keys: values joined with "_".
 * Returns null when the sample lacks any of the keys (it then cannot be allocated by attribute).
 */
export function attrKey(attrs: Record<string, string>, keys: readonly string[]): string | null {
  if (keys.length === 0) return null;
  const parts: string[] = [];
  for (const k of keys) {
    const v = attrs[k];
    if (v === undefined) return null;
    parts.push(v);
  }
  return parts.join('_');
}

/** Parse repeated `key=value` CLI options into a raw record; throws on a malformed pair. */
export function parseAttrPairs(pairs: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const i = p.indexOf('=');
    if (i <= 0) throw new Error(`--attr "${p}": expected key=value`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}
