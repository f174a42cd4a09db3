// CSV fields of one record line, RFC 4180 quoting: "a,b" is one field, "" inside quotes is a
// quote. The one parser of every CSV reader (infer input, KB label import, `kb eval`), so a
// quoted field means the same everywhere. Line-based, so callers stream a file line by line;
// a quoted field spanning lines is not supported (no reader needs it) and reads as unterminated.
// Fields are returned as written (no trimming): callers decide what whitespace means.

/** Split one CSV line; throws Error('unterminated quoted field') on an open quote. */
export function splitCsvLine(line: string): string[] {
  if (line.indexOf('"') < 0) return line.split(','); // the common all-numeric row: fast path
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else q = false;
      } else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (q) throw new Error('unterminated quoted field');
  out.push(cur);
  return out;
}
