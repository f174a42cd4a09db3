// Is the process that wrote a lock or a temp file still running? A pid alone cannot tell: pids
// are reused (after a crash the same number may run another program) and a reboot restarts the
// numbering. A process is named by pid + start time (/proc/<pid>/stat field 22, clock ticks
// since boot) + boot id + host; leftovers named by pid only (temp files) use pidAlive.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Who a process is, beyond its pid. */
export interface ProcessStamp {
  pid: number;
  /** start time in clock ticks since boot; null off Linux */
  start: string | null;
  host: string;
  /** /proc/sys/kernel/random/boot_id; absent in records written before it was recorded, null off Linux */
  boot?: string | null;
}

/** Start time of a process from /proc (Linux); null when unknown. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields after the LAST ')' are fixed
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); starttime is field 22 -> rest[19]
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

let boot: string | null | undefined;
/** This boot's id (Linux); null when unknown. */
export function bootId(): string | null {
  if (boot === undefined) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      boot = null;
    }
  }
  return boot;
}

/** The stamp of this process. */
export function selfStamp(): ProcessStamp {
  return { pid: process.pid, start: processStartTime(process.pid), host: hostname(), boot: bootId() };
}

/** Does a process with this pid run on this machine now? (EPERM: it does, as another user) */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Is the stamped process still running? One on another host cannot be checked and counts as
 * alive; one stamped in another boot, or whose pid now has another start time, is gone.
 */
export function stampAlive(s: ProcessStamp): boolean {
  if (s.host !== hostname()) return true;
  const nowBoot = bootId();
  if (s.boot && nowBoot && s.boot !== nowBoot) return false;
  if (!pidAlive(s.pid)) return false;
  if (s.start !== null) {
    const now = processStartTime(s.pid);
    if (now !== null && now !== s.start) return false; // pid reused by another process
  }
  return true;
}
