// A tiny progress line on stderr, only when stderr is a TTY (cron and pipes stay quiet).
// Hand-written (~30 lines) rather than cli-progress: one bar, redrawn at most 10x a second,
// is all sync needs, and it keeps a dependency out of the start-up path.
import { humanBytes as fmtBytes } from '../units.js';

export interface Progress {
  update(label: string, done: number, total: number, unit?: 'items' | 'bytes'): void;
  note(line: string): void;
  done(): void;
}



export function makeProgress(enabled = !!process.stderr.isTTY): Progress {
  let last = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    update(label, done, total, unit = 'items') {
      if (!enabled) return;
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
      if (!enabled) return;
      clear();
      process.stderr.write(line + '\n');
    },
    done() {
      if (enabled) clear();
    },
  };
}
