// Units for human output, one style everywhere: bytes in binary units, times in ISO-8601 UTC
// to the second. (Machine output keeps bytes as numbers and full ISO times.)

/** 1536 -> "1.5 KiB" */
export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${u[i]}`;
}

/** epoch ms -> "2026-01-02T03:04:05Z"; "-" for none */
export function isoTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}
