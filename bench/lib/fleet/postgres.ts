// A throw-away PostgreSQL cluster for the fleet bench: initdb into a temp dir, pg_ctl start on a
// free loopback port (no unix socket outside that dir), one database. Runs as the `postgres` OS
// user when we are root (the server refuses to run as root). A detached watchdog stops and
// removes the cluster when the bench process dies, even by kill -9. Not test/helpers/postgres.ts:
// the bench measures a server with PostgreSQL's default settings (the test helper shrinks
// shared_buffers for many clusters side by side) and needs the postmaster's pid for /proc.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export interface Postgres {
  /** postgres://postgres@127.0.0.1:PORT/kb */
  url: string;
  port: number;
  /** the postmaster (its children are the backends) */
  pid: number;
  dir: string;
  /** bytes of the database on disk (pg_database_size) */
  databaseBytes(): number;
  /** one psql query, the unaligned result */
  query(sql: string): string;
  stop(): void;
}

const PG_BIN = process.env.SEDNA_LL_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export function postgresAvailable(): boolean {
  return existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'pg_ctl'));
}

function pgUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export async function startPostgres(opts: { maxConnections?: number } = {}): Promise<Postgres> {
  if (!postgresAvailable()) throw new Error(`PostgreSQL not found in ${PG_BIN} (apt-get install -y postgresql; or set SEDNA_LL_PG_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), 'sedna-fleet-pg-'));
  const user = pgUser();
  if (user) chownSync(dir, user.uid, user.gid);
  const run = (bin: string, args: string[]) =>
    execFileSync(user ? 'runuser' : join(PG_BIN, bin), user ? ['-u', 'postgres', '--', join(PG_BIN, bin), ...args] : args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  const data = join(dir, 'data');
  const port = await freePort();
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-instructions', '--no-sync']);
    // durable commits (fsync, synchronous_commit on: the defaults) as a production KB would run
    const o = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=${opts.maxConnections ?? 200}`;
    run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '180', '-o', o, 'start']);
    run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-qAt', '-c', 'CREATE DATABASE kb']);
  } catch (e) {
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`throw-away PostgreSQL did not start: ${(e as { stderr?: string }).stderr ?? (e as Error).message}\n${log}`);
  }
  const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  // watchdog: the cluster goes with the bench process, however it ends
  const stopCmd = `${user ? 'runuser -u postgres -- ' : ''}${join(PG_BIN, 'pg_ctl')} -D ${data} -m immediate stop`;
  spawn('setsid', ['bash', '-c', `while kill -0 ${process.pid} 2>/dev/null && [ -d '${data}' ]; do sleep 2; done; ${stopCmd} >/dev/null 2>&1; rm -rf '${dir}'`], {
    detached: true,
    stdio: 'ignore',
  }).unref();
  const query = (sql: string) => run('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'kb', '-qAt', '-c', sql]).trim();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/kb`,
    port,
    pid,
    dir,
    query,
    databaseBytes: () => Number(query(`SELECT pg_database_size('kb')`)),
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
