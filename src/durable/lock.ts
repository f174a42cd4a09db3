// Single-instance file locks: one `sync` / rollout per edge home (locks/<name>.lock), one
// training round per KB (tmp/train.lock). Cron may start a run while the previous one still
// works, and a run killed with -9 leaves its lock file behind: the next run must see at once
// whether the holder is alive (exit 6) or gone (take the lock over, safely).
//
// Acquire: the holder record (pid, process start time, host, boot id, nonce) is written to a
// private temp file which is then hard-linked to the lock name. link(2) fails with EEXIST like
// an O_EXCL create, but the lock file never exists half-written, so a reader never mistakes a
// lock being born for a corrupt one.
//
// Stale takeover: a lock is stale when its holder is gone (durable/process.ts: pid dead, pid
// reused by another process, or written in another boot). Two runs may judge the same lock
// stale at once, so nobody unlinks by name after checking (check-then-unlink would delete a
// lock a racer just created). Instead the stale file is renamed to a private name (atomic;
// only one racer gets that inode), its nonce is compared with the nonce judged stale, and only
// then deleted; every racer then retries the link, which exactly one wins. A racer that renamed
// a fresh live lock by mistake links it back.
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LockedError } from '../errors.js';
import { type ProcessStamp, pidAlive, selfStamp, stampAlive } from './process.js';

export { processStartTime } from './process.js';

export interface LockHolder extends ProcessStamp {
  nonce: string;
  /** what holds it, e.g. "sync", "kb train" */
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

/** Is the holder of a lock file still running? Unknown (another host) counts as alive. */
export const holderAlive = (h: LockHolder): boolean => stampAlive(h);

/**
 * The holder record of a lock file: 'missing' when there is none, null when it is garbage (never
 * written by a lock: links are born complete). A bare pid is the record of locks written by
 * versions before this one (the training lock): its holder is judged by its pid alone.
 */
function readHolder(path: string, name: string): LockHolder | null | 'missing' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw e;
  }
  if (/^\d+\s*$/.test(text)) {
    let since = Date.now();
    try {
      since = statSync(path).mtimeMs;
    } catch {
      /* gone meanwhile: the record is still what we read */
    }
    return { pid: Number(text), start: null, host: hostname(), nonce: `pid:${text.trim()}`, name, since };
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h.pid === 'number' && typeof h.nonce === 'string' ? h : null;
  } catch {
    return null;
  }
}

const uniq = () => `${process.pid}.${randomBytes(6).toString('hex')}`;

/** Temp and aside files of acquirers that died between writing and cleaning them up. */
function sweepDeadTemps(dir: string, base: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const prefix = `.${base}.`;
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^\.(?:new|stale)\.(\d+)\.[0-9a-f]+$/.exec(n.slice(prefix.length - 1));
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, n));
    } catch {
      /* another run swept it */
    }
  }
}

/**
 * Take the lock file at `path` for `name` (what the holder is, named in the refusal) or throw
 * LockedError naming the live holder. Released by release(), and on normal process exit.
 */
export function acquireLockFile(path: string, name: string): Lock {
  const dir = dirname(path);
  const base = basename(path);
  mkdirSync(dir, { recursive: true });
  sweepDeadTemps(dir, base);
  const me: LockHolder = { ...selfStamp(), nonce: randomBytes(12).toString('hex'), name, since: Date.now() };
  const tmp = join(dir, `.${base}.new.${uniq()}`);
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
      const h = readHolder(path, name);
      if (h === 'missing') continue; // released meanwhile: retry the link
      if (h !== null && holderAlive(h)) {
        const host = h.host === hostname() ? '' : ` on host ${h.host}`;
        throw new LockedError(`locked: another ${h.name} is running (pid ${h.pid}${host}, since ${new Date(h.since).toISOString()}); lock file ${path}`);
      }
      // stale: move exactly the file we judged stale out of the way, then race for the link
      const aside = join(dir, `.${base}.stale.${uniq()}`);
      try {
        renameSync(path, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another racer moved it
        throw e;
      }
      const moved = readHolder(aside, name);
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
      throw new LockedError(`locked: another run took the lock first; lock file ${path}`);
    }
    throw new LockedError(`locked: could not take ${path} after repeated races`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
}

/** Take <locksDir>/<name>.lock (see acquireLockFile). */
export function acquireLock(locksDir: string, name: string): Lock {
  return acquireLockFile(join(locksDir, `${name}.lock`), name);
}

function releaseLock(path: string, me: LockHolder, onExit: (() => void) | null): void {
  if (onExit) process.removeListener('exit', onExit);
  // only remove the lock if it is still ours (never someone else's after a takeover)
  const h = readHolder(path, me.name);
  if (h !== 'missing' && h !== null && h.nonce === me.nonce) {
    try {
      unlinkSync(path);
    } catch {
      /* gone */
    }
  }
}

/** Run fn while holding <locksDir>/<name>.lock; LockedError when held. */
export async function withLock<T>(paths: { locks: string }, name: string, fn: (lock: Lock) => Promise<T> | T): Promise<T> {
  const lock = acquireLock(paths.locks, name);
  try {
    return await fn(lock);
  } finally {
    lock.release();
  }
}
