// Both KB store backends for tests that run the same KB logic on each: a real embedded KB
// (kb init in a temp dir: SQLite + files) and a real shared one (a throw-away PostgreSQL cluster,
// kb init --store with a signing key file). One cluster per test file: call stopBackends() in
// after(). PostgreSQL missing: that backend's `skip` says why (under CI=true the file fails).
import { join } from 'node:path';
import { initKb, initSharedKb } from '../../src/kb/init.js';
import { openKbStore, openStore } from '../../src/kb/open.js';
import type { KbStore } from '../../src/kb/store.js';
import { tempDir } from './cli.js';
import { postgresMissing, startPostgres, type TestPostgres } from './postgres.js';

export interface OpenedKb {
  store: KbStore;
  /** the KB's data dir (sqlite) or blob dir (postgres) */
  dir: string;
  /** postgres: the database URL */
  url?: string;
  /** open the same KB again (a second process would do the same) */
  reopen(): Promise<KbStore>;
  cleanup(): Promise<void>;
}

export interface KbBackend {
  name: 'sqlite' | 'postgres';
  skip: string | false;
  open(): Promise<OpenedKb>;
}

let pg: TestPostgres | null = null;
const missingPg = postgresMissing();

export const KB_BACKENDS: KbBackend[] = [
  {
    name: 'sqlite',
    skip: false,
    open: async () => {
      const t = tempDir('sedna-ll-kb-');
      const dir = join(t.dir, 'kb');
      await initKb(dir);
      const store = await openKbStore(dir);
      return { store, dir, reopen: () => openKbStore(dir), cleanup: async () => (await store.close(), t.cleanup()) };
    },
  },
  {
    name: 'postgres',
    skip: missingPg ?? false,
    open: async () => {
      pg ??= await startPostgres();
      const t = tempDir('sedna-ll-kb-pg-');
      const flags = { store: await pg.createDatabase(), blobs: join(t.dir, 'blobs'), signingKey: join(t.dir, 'signing.key') };
      await initSharedKb(flags);
      const store = await openStore(flags);
      return { store, dir: flags.blobs, url: flags.store, reopen: () => openStore(flags), cleanup: async () => (await store.close(), t.cleanup()) };
    },
  },
];

export async function stopBackends(): Promise<void> {
  await pg?.stop();
  pg = null;
}

/** PostgreSQL: resolves once n backends of the database at url wait on a lock, or stop() (polls the server's view) */
export async function waitsOnLock(url: string, stop: () => boolean = () => false, n = 1): Promise<void> {
  const { default: P } = await import('pg');
  const c = new P.Client({ connectionString: url });
  await c.connect();
  try {
    for (;;) {
      const r = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
      if (r.rows[0].n >= n || stop()) return;
      await new Promise((res) => setImmediate(res));
    }
  } finally {
    await c.end();
  }
}
