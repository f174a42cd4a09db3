// WAL checkpoints off the event loop (serve's outbox). SQLite's automatic checkpoint runs inside
// the COMMIT that crosses wal_autocheckpoint pages: it copies the WAL into the database and
// fsyncs both, a few ms on a quiet disk and tens under load, and every request waiting on the
// event loop pays for it. Here the serving connection has wal_autocheckpoint = 0 and a worker
// thread with a connection of its own runs PASSIVE checkpoints (which never block writers)
// every `every` commits, and once a second if anything was committed since. Checkpoints keep
// SQLite's own fsyncs (WAL before copying, database after), so durability is unchanged. If the
// worker fails, automatic checkpoints are switched back on (the WAL must not grow unbounded).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { DB } from './db.js';

const require = createRequire(import.meta.url);

/**
 * Where the worker loads better-sqlite3 from; null when it is not a file on disk: in the
 * single-file binary the driver and its addon ride inside the executable (src/sea/natives.ts),
 * where an eval'd worker cannot load them, so serve keeps SQLite's automatic checkpoints there.
 */
function driverPath(): string | null {
  try {
    return typeof require.resolve === 'function' ? require.resolve('better-sqlite3') : null;
  } catch {
    return null;
  }
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = FULL');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    parentPort.postMessage({ log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});
`;

/** SQLite's default wal_autocheckpoint, restored if the worker fails */
const AUTOCHECKPOINT_PAGES = 1000;

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private busy = false;
  private failed = false;
  private commits = 0;
  private idleWaiters: (() => void)[] = [];
  /** checkpoints done, and the last one's WAL frames / frames copied (tests, the bench) */
  checkpoints = 0;
  last: { log: number; checkpointed: number } | null = null;

  constructor(
    private readonly db: DB,
    dbPath: string,
    private readonly warn: (msg: string) => void,
    private readonly every = 256,
    intervalMs = 1000,
    driver: string = driverPath() ?? 'better-sqlite3',
  ) {
    db.pragma('wal_autocheckpoint = 0');
    this.worker = new Worker(WORKER, { eval: true, workerData: { driver, path: dbPath } });
    this.worker.unref();
    this.worker.on('message', (m: { log: number; checkpointed: number } | { error: string }) => {
      this.busy = false;
      this.worker.unref();
      if ('error' in m) this.warn(`WAL checkpoint: ${m.error}`);
      else {
        this.checkpoints++;
        this.last = m;
      }
      for (const w of this.idleWaiters.splice(0)) w();
    });
    this.worker.on('error', (e) => this.fail(e));
    this.timer = setInterval(() => this.start(), intervalMs);
    this.timer.unref();
  }

  /** A checkpointer for `db`, or null where no worker can load the driver (automatic checkpoints stay on). */
  static open(db: DB, dbPath: string, warn: (msg: string) => void): WalCheckpointer | null {
    const driver = driverPath();
    return driver ? new WalCheckpointer(db, dbPath, warn, undefined, undefined, driver) : null;
  }

  /** A transaction committed on the serving connection. */
  committed(): void {
    if (++this.commits >= this.every) this.start();
  }

  /** Resolves when no checkpoint is running (tests). */
  idle(): Promise<void> {
    return this.busy ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  private start(): void {
    if (this.busy || this.failed || this.commits === 0) return;
    this.busy = true;
    this.commits = 0;
    this.worker.ref(); // a checkpoint in flight keeps the process alive (an idle worker does not)
    this.worker.postMessage('checkpoint');
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.busy = false;
    for (const w of this.idleWaiters.splice(0)) w();
    this.warn(`WAL checkpoint worker failed (${e.message}); checkpoints run in the serving thread again`);
    try {
      this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    } catch {
      /* the database is closing */
    }
  }

  /** Stop the worker (after its checkpoint in flight, if any). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.failed) return;
    await this.idle();
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    this.worker.ref();
    this.worker.postMessage('close');
    await exited;
  }
}
