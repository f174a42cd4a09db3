// The KB backends a fleet run can use, behind one shape: how to initialise the KB, which
// arguments `kb serve` and the KB CLI take, how to open the store in-process (bulk device
// enrolment through the same addDevice the CLI calls), the database's size on disk, and which
// engine processes to charge CPU to.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { sedna, tempDir } from '../../../test/helpers/cli.js';
import type { KbStore } from '../../../src/kb/store.js';
import type { CpuTracker } from './proc-cpu.js';
import { startPostgres, type Postgres } from './postgres.js';

export interface KbBackend {
  /** sqlite | postgres | postgres+s3 */
  name: string;
  /** where state lives, for kb serve and every KB CLI command */
  args: string[];
  env: NodeJS.ProcessEnv;
  adminToken: string;
  publicKeyPem: string;
  /** a directory for logs and the model file */
  workDir: string;
  openStore(): Promise<KbStore>;
  /** bytes of the sample database on disk */
  databaseBytes(): number;
  /** charge the engines' processes (postgres, radosgw) to named CPU groups */
  trackEngines(t: CpuTracker): void;
  /** can devices get presigned blob URLs (an object store behind the KB)? */
  presigned: boolean;
  stop(): Promise<void>;
}

function must(r: { code: number; stdout: string; stderr: string }, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** `kb <args>` with the backend's arguments; stdout, throws on failure. */
export function kbCli(b: Pick<KbBackend, 'args' | 'env'>, args: string[], what = `kb ${args[0]}`): string {
  return must(sedna(['kb', ...args, ...b.args], { env: b.env, timeoutMs: 600_000 }), what);
}

/** The embedded default: SQLite + files in a data directory. */
export async function sqliteBackend(): Promise<KbBackend> {
  const t = tempDir('sedna-fleet-sqlite-');
  const data = join(t.dir, 'kb');
  const init = JSON.parse(must(sedna(['kb', 'init', '--data', data, '--json']), 'kb init')) as { admin_token: string; public_key: string };
  return {
    name: 'sqlite',
    args: ['--data', data],
    env: {},
    adminToken: init.admin_token,
    publicKeyPem: init.public_key,
    workDir: t.dir,
    async openStore() {
      const { openKbStore } = await import('../../../src/kb/open.js');
      return openKbStore(data);
    },
    databaseBytes() {
      // the database's pages as committed (WAL included), without the WAL's extra copies
      const db = new Database(join(data, 'kb.db'), { readonly: true, fileMustExist: true });
      try {
        const pages = (db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number);
        return pages * (db.pragma('page_size', { simple: true }) as number);
      } finally {
        db.close();
      }
    },
    trackEngines() {},
    presigned: false,
    async stop() {
      t.cleanup();
    },
  };
}

/** PostgreSQL for metadata (and small payloads); set once kb-store's backend is on main. */
export async function postgresBackend(o: { s3: 'required' | 'off' | 'auto'; log: (s: string) => void }): Promise<KbBackend> {
  void o;
  const pg: Postgres = await startPostgres();
  pg.stop();
  throw new Error('the PostgreSQL store backend (kb serve --store postgres://...) is not on main yet');
}
