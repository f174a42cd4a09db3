// Single-instance locks per edge home (locks/<name>.lock), for `sync` and for rollout commands
// (`model activate/install` reuse withLock). Cron may start a run while the previous one still
// works, and a run killed with -9 leaves its lock file behind: the next run must see at once
// whether the holder is alive (exit 6) or gone (take the lock over, safely).
//
// Acquire: the holder record (pid, process start time, hostname, nonce) is written to a private
// temp file which is then hard-linked to the lock name. link(2) fails with EEXIST like an
// O_EXCL create, but the lock file never exists half-written, so a reader never mistakes a
// lock being born for a corrupt one.
//
// Stale takeover: a lock is stale when its host is ours and its pid is dead (kill(pid,0) ->
// ESRCH) or the pid now belongs to another process (start time in /proc/<pid>/stat differs).
// Two runs may judge the same lock stale at once, so nobody unlinks by name after checking
// (check-then-unlink would delete a lock a racer just created). Instead the stale file is
// renamed to a private name (atomic; only one racer gets that inode), its nonce is compared
// with the nonce judged stale, and only then deleted; every racer then retries the link, which
// exactly one wins. A racer that renamed a fresh live lock by mistake links it back.
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CliError, EXIT } from '../format/exit-codes.js';

export interface LockHolder {
  pid: number;
  /** process start time (clock ticks since boot, /proc/<pid>/stat field 22); null off Linux */
  start: string | null;
  host: string;
  nonce: string;
  /** what holds it, e.g. "sync" */
  name: string;
  since: number;
}

export interface Lock {
  path: string;
  holder: LockHolder;
  release(): void;
  /** true when a stale lock was taken over to get this one */
  tookOver: boolean;
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: exists but belongs to another user -> alive
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Is the holder of a lock file still running? Unknown (another host) counts as alive. */
export function holderAlive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true;
  if (!pidAlive(h.pid)) return false;
  if (h.start !== null) {
    const now = processStartTime(h.pid);
    if (now !== null && now !== h.start) return false; // pid reused by another process
  }
  return true;
}

function readHolder(path: string): LockHolder | null | 'missing' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h.pid === 'number' && typeof h.nonce === 'string' ? h : null;
  } catch {
    return null; // unreadable: never written by us (links are born complete) -> stale
  }
}

const uniq = () => `${process.pid}.${randomBytes(6).toString('hex')}`;

/**
 * Take locks/<name>.lock or throw CliError(exit 6) naming the live holder.
 * The lock is released by release(), and on normal process exit.
 */
export function acquireLock(locksDir: string, name: string): Lock {
  mkdirSync(locksDir, { recursive: true });
  const path = join(locksDir, `${name}.lock`);
  const me: LockHolder = { pid: process.pid, start: processStartTime(process.pid), host: hostname(), nonce: randomBytes(12).toString('hex'), name, since: Date.now() };
  const tmp = join(locksDir, `.${name}.lock.new.${uniq()}`);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, JSON.stringify(me) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  let tookOver = false;
  try {
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        linkSync(tmp, path);
        // a normal exit (even via process.exit) releases; kill -9 leaves a stale lock behind
        const onExit = () => releaseLock(path, me, null);
        process.once('exit', onExit);
        return { path, holder: me, tookOver, release: () => releaseLock(path, me, onExit) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const h = readHolder(path);
      if (h === 'missing') continue; // released meanwhile: retry the link
      if (h !== null && holderAlive(h)) {
        const host = h.host === hostname() ? '' : ` on host ${h.host}`;
        throw new CliError(`locked: another ${h.name} is running (pid ${h.pid}${host}, since ${new Date(h.since).toISOString()}); lock file ${path}`, EXIT.LOCKED);
      }
      // stale: move exactly the file we judged stale out of the way, then race for the link
      const aside = join(locksDir, `.${name}.lock.stale.${uniq()}`);
      try {
        renameSync(path, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another racer moved it
        throw e;
      }
      const moved = readHolder(aside);
      const sameStale = h === null ? moved === null : moved !== 'missing' && moved !== null && moved.nonce === h.nonce;
      if (sameStale) {
        unlinkSync(aside);
        tookOver = true;
        continue;
      }
      // we moved a lock a racer had just taken: give it back (link fails only if yet another
      // run already holds the name, which is then the live holder anyway) and give up
      try {
        linkSync(aside, path);
      } catch {
        /* the name is held by someone else now */
      }
      unlinkSync(aside);
      throw new CliError(`locked: another run took the lock first; lock file ${path}`, EXIT.LOCKED);
    }
    throw new CliError(`locked: could not take ${path} after repeated races`, EXIT.LOCKED);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
}

function releaseLock(path: string, me: LockHolder, onExit: (() => void) | null): void {
  if (onExit) process.removeListener('exit', onExit);
  // only remove the lock if it is still ours (never someone else's after a takeover)
  const h = readHolder(path);
  if (h !== 'missing' && h !== null && h.nonce === me.nonce) {
    try {
      unlinkSync(path);
    } catch {
      /* gone */
    }
  }
}

/** Run fn while holding locks/<name>.lock of an edge home; exit 6 (CliError) when held. */
export async function withLock<T>(paths: { locks: string }, name: string, fn: (lock: Lock) => Promise<T> | T): Promise<T> {
  const lock = acquireLock(paths.locks, name);
  try {
    return await fn(lock);
  } finally {
    lock.release();
  }
}
