// One training round at a time per KB: cron may start `kb train` while the previous run is still
// going. A lock file created with O_EXCL holds the owner's pid; a lock whose process is gone (a
// killed run) is taken over.
import { mkdirSync, openSync, closeSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { CliError, EXIT } from '../format/exit-codes.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock or throw CliError(EXIT.LOCKED); returns the release function. */
export function acquireTrainLock(path: string): () => void {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // vanished meanwhile: retry
      }
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new CliError(`another kb train is running (pid ${pid}, lock ${path})`, EXIT.LOCKED);
      rmSync(path, { force: true }); // stale: its owner died
    }
  }
  throw new CliError(`cannot take the training lock ${path}`, EXIT.LOCKED);
}
