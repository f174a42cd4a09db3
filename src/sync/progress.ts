// What a sync run says on stderr while it runs. On a TTY: a tiny progress line, redrawn at most
// 10x a second, with notes (a retry, a later failure, a report not sent) printed above it.
// Elsewhere (cron, a pipe, a log file) no bar, no control codes: each note as one plain line
// "sedna-ll: ...", so cron mail shows that a run retried. stdout is never written here (--json).
// Hand-written (~40 lines) rather than cli-progress: one bar is all sync needs, and it keeps a
// dependency out of the start-up path.
import { humanBytes as fmtBytes } from '../units.js';

export interface Progress {
  update(label: string, done: number, total: number, unit?: 'items' | 'bytes'): void;
  note(line: string): void;
  done(): void;
}

/** bars: a TTY; lines: notes only, as plain lines; off: nothing (a caller with its own output) */
export type ProgressMode = 'bars' | 'lines' | 'off';

export function makeProgress(mode: ProgressMode = process.stderr.isTTY ? 'bars' : 'lines'): Progress {
  const bars = mode === 'bars';
  let last = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    update(label, done, total, unit = 'items') {
      if (!bars) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const width = 30;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      const nums = unit === 'bytes' ? `${fmtBytes(done)}/${fmtBytes(total)}` : `${done}/${total}`;
      process.stderr.write(`\r\x1b[2K${label} [${bar}] ${nums}`);
      drawn = true;
    },
    note(line) {
      if (mode === 'off') return;
      if (bars) {
        clear();
        process.stderr.write(line + '\n');
        return;
      }
      // one line per note whatever the reason text holds (an error message may span lines)
      process.stderr.write(`sedna-ll: ${line.replace(/\s*[\r\n]+\s*/g, ' ')}\n`);
    },
    done() {
      if (bars) clear();
    },
  };
}
