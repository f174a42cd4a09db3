// Private data files: an edge home holds sample payloads (edge.db, blobs/) and the device token,
// a KB data dir holds every device's samples, labels and token hashes. Directories are 0700,
// files 0600; ones that already exist with looser modes (made by an older version, or a dir the
// operator created beforehand) are tightened when opened.
import { chmodSync, mkdirSync, statSync } from 'node:fs';

/** Create dir (0700) if missing, else tighten it; tighten those of files that exist to 0600. */
export function keepPrivate(dir: string, files: string[] = []): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  tighten(dir, 0o700);
  for (const f of files) tighten(f, 0o600);
}

/** chmod path to mode when group/other have any access; missing files and refusals pass. */
function tighten(path: string, mode: number): void {
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) === 0) return;
    chmodSync(path, mode);
  } catch (e) {
    // ENOENT: not created yet; EPERM/EROFS: not ours to change (a read-only home still reads)
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EPERM' && code !== 'EROFS' && code !== 'EACCES') throw e;
  }
}

/** A SQLite database file with its WAL and shared-memory files. */
export const sqliteFiles = (db: string): string[] => [db, `${db}-wal`, `${db}-shm`];
