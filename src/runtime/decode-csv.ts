// CSV input: a header row, then one sample per row. --features and --attrs select columns by
// name, by 1-based number ("3", "2-785"), or by a name range in header order ("px0..px783").
// A column named "id" (if not selected otherwise) gives the sample id. Quoted fields ("a,b",
// "" for a quote) are supported within a line; a record spanning lines is not. The line parser is
// format/csv.ts, shared with the KB's CSV readers.
import { normaliseValue } from '../format/attrs.js';
import { splitCsvLine } from '../format/csv.js';
import { UsageError } from '../errors.js';
import { badRecord, f32Bytes, type Item } from './sample.js';

/** Resolve a column spec against the header; throws a usage error naming the bad item. */
export function resolveColumns(spec: string, header: string[], opt: string): number[] {
  const cols: number[] = [];
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const exact = header.indexOf(item);
    if (exact >= 0) {
      cols.push(exact);
      continue;
    }
    let m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (m) {
      const a = Number(m[1]);
      const b = m[2] !== undefined ? Number(m[2]) : a;
      if (a < 1 || b < a || b > header.length) throw new UsageError(`${opt} "${item}": columns are 1..${header.length}`);
      for (let c = a; c <= b; c++) cols.push(c - 1);
      continue;
    }
    m = /^(.+)\.\.(.+)$/.exec(item);
    if (m) {
      const a = header.indexOf(m[1]);
      const b = header.indexOf(m[2]);
      if (a < 0 || b < a) throw new UsageError(`${opt} "${item}": not a column range of the header`);
      for (let c = a; c <= b; c++) cols.push(c);
      continue;
    }
    throw new UsageError(`${opt} "${item}": no such column in the CSV header`);
  }
  return cols;
}

export interface CsvLayout {
  features: number[];
  attrs: { name: string; col: number }[];
  idCol: number;
  width: number;
}

export function csvLayout(headerLine: string, featureSpec: string | undefined, attrSpec: string | undefined): CsvLayout {
  let header: string[];
  try {
    header = splitCsvLine(headerLine).map((h) => h.trim());
  } catch (e) {
    throw new UsageError(`CSV header: ${(e as Error).message}`);
  }
  const attrCols = attrSpec ? resolveColumns(attrSpec, header, '--attrs') : [];
  const idCol = header.indexOf('id');
  const features = featureSpec
    ? resolveColumns(featureSpec, header, '--features')
    : header.map((_, i) => i).filter((i) => i !== idCol && !attrCols.includes(i));
  if (features.length === 0) throw new UsageError('CSV: no feature columns (use --features)');
  return {
    features,
    attrs: attrCols.map((c) => ({ name: header[c].toLowerCase(), col: c })),
    idCol: features.includes(idCol) || attrCols.includes(idCol) ? -1 : idCol,
    width: header.length,
  };
}

/**
 * A field as an error message quotes it: JSON-escaped (a NUL or an escape sequence from a
 * binary file must not reach the terminal raw) and cut to its first 40 characters. The whole
 * field went into the message: one bad 50 MB field was a 50 MB line on stderr.
 */
export function shownField(s: string): string {
  return s.length > 40 ? `${JSON.stringify(s.slice(0, 40))}... (${s.length} characters)` : JSON.stringify(s);
}

export function decodeCsvLine(line: string, lineNo: number, L: CsvLayout, defaultTask: string | null): Item | null {
  if (line.trim().length === 0) return null;
  const where = `line ${lineNo}`;
  let f: string[];
  try {
    f = splitCsvLine(line);
  } catch (e) {
    return badRecord(where, null, (e as Error).message);
  }
  const id: string | number = L.idCol >= 0 && f[L.idCol] !== undefined && f[L.idCol] !== '' ? f[L.idCol] : lineNo;
  if (f.length !== L.width) return badRecord(where, id, `${f.length} fields, the header has ${L.width}`);
  const vec = new Float32Array(L.features.length);
  for (let i = 0; i < L.features.length; i++) {
    const s = f[L.features[i]];
    const v = s.trim() === '' ? NaN : Number(s);
    vec[i] = v;
    if (!Number.isFinite(vec[i])) return badRecord(where, id, `feature column ${L.features[i] + 1} = ${shownField(s)} is not a finite number`);
  }
  const attrs: Record<string, string> = {};
  for (const a of L.attrs) attrs[a.name] = normaliseValue(f[a.col].trim());
  return { where, id, attrs, task: defaultTask, vec, image: null, payloadKind: 'f32', payload: () => f32Bytes(vec) };
}
