// CPU time of the processes of a fleet run, from /proc (Linux): utime + stime of each process,
// read at phase boundaries. A group is named (replica-1, haproxy, postgres, ...) and made of root
// pids; a root that forks workers (the postmaster, ceph) counts its live descendants too, and
// its reaped children through its own cutime + cstime, so a backend that exited mid-phase is
// neither lost nor counted twice. A root that is killed (kill -9 of a replica) keeps the last
// value read from it: read it just before the kill (CpuTracker.retire).
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);

interface Stat {
  ppid: number;
  /** own utime + stime, ms */
  self: number;
  /** cutime + cstime of reaped children, ms */
  children: number;
}

/** /proc/<pid>/stat of one process; null when it is gone. */
export function readStat(pid: number): Stat | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // the command name (field 2) may hold spaces and parentheses: split after the LAST ')'
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): field n is f[n - 3]
  const n = (i: number) => Number(f[i - 3]);
  return { ppid: n(4), self: (n(14) + n(15)) * TICK_MS, children: (n(16) + n(17)) * TICK_MS };
}

/** Every live process's parent, for walking a tree. */
function parents(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (!st) continue;
    const l = kids.get(st.ppid) ?? [];
    l.push(Number(e));
    kids.set(st.ppid, l);
  }
  return kids;
}

interface Group {
  roots: Set<number>;
  tree: boolean;
  /** cumulative ms of roots that are gone (retired) */
  retired: number;
}

export class CpuTracker {
  private readonly groups = new Map<string, Group>();

  /**
   * Track pid under name; tree: also its descendants (and its reaped children). fromNow: only
   * CPU spent from now on counts (a replica restarted mid-phase: its start-up is reported
   * apart); returns the CPU ms the process had spent so far.
   */
  add(name: string, pid: number, opts: { tree?: boolean; fromNow?: boolean } = {}): number {
    const g = this.groups.get(name) ?? { roots: new Set<number>(), tree: false, retired: 0 };
    g.roots.add(pid);
    g.tree ||= opts.tree ?? false;
    this.groups.set(name, g);
    const st = readStat(pid);
    const spent = st ? st.self + st.children : 0;
    if (opts.fromNow) g.retired -= spent;
    return spent;
  }

  /** Read pid's CPU now and keep it as a constant part of its group (call right before kill -9). */
  retire(name: string, pid: number): void {
    const g = this.groups.get(name);
    if (!g || !g.roots.has(pid)) return;
    const st = readStat(pid);
    if (st) g.retired += st.self + st.children;
    g.roots.delete(pid);
  }

  /** Cumulative CPU ms per group at this moment. */
  sample(): Record<string, number> {
    const needTree = [...this.groups.values()].some((g) => g.tree);
    const kids = needTree ? parents() : new Map<number, number[]>();
    const out: Record<string, number> = {};
    for (const [name, g] of this.groups) {
      let ms = g.retired;
      for (const root of g.roots) {
        const st = readStat(root);
        if (!st) continue;
        ms += st.self + st.children;
        if (!g.tree) continue;
        const todo = [...(kids.get(root) ?? [])];
        while (todo.length) {
          const p = todo.pop()!;
          const c = readStat(p);
          // a live descendant's own reaped children are in its cutime (not yet in the root's)
          if (c) ms += c.self + c.children;
          todo.push(...(kids.get(p) ?? []));
        }
      }
      out[name] = ms;
    }
    const self = process.cpuUsage();
    out['load-generator'] = (self.user + self.system) / 1000;
    return out;
  }
}

/** CPU ms per group spent between two samples. */
export function cpuDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(b)) d[k] = Math.round(b[k] - (a[k] ?? 0));
  return d;
}
