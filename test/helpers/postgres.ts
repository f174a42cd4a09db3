/**
 * A real PostgreSQL server for tests and benches: a throw-away cluster (initdb + pg_ctl, ~2-5 s)
 * on 127.0.0.1 and a socket in its own temp dir, trust authentication, fsync on. Start ONE per
 * test file and a database per test:
 *
 *   const missing = postgresMissing();           // throws under CI=true when PostgreSQL is missing
 *   describe('...', { skip: missing ?? false }, () => {
 *     let pg: TestPostgres;
 *     before(async () => { pg = await startPostgres(); });
 *     after(async () => { await pg?.stop(); });
 *     test('x', async () => { const url = await pg.createDatabase(); ... });
 *   });
 *
 * PostgreSQL refuses to run as root: as root the cluster belongs to (and runs as) the
 * `postgres` user that the Debian package creates. A watchdog stops the server and deletes the
 * dir when this process dies (kill -9 of the test runner).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** the bin dir of the newest installed PostgreSQL, or null */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length) return join(root, versions[0], 'bin');
  }
  const r = spawnSync('sh', ['-c', 'command -v initdb']);
  return r.status === 0 ? join(r.stdout.toString().trim(), '..') : null;
}

/**
 * Why the PostgreSQL tests cannot run here, or null when they can. Under CI=true a missing server
 * THROWS (.ci/run installs postgresql): the test file fails instead of skipping.
 */
export function postgresMissing(): string | null {
  const bin = postgresBinDir();
  let msg: string | null = null;
  if (!bin) msg = 'PostgreSQL server not found (apt-get install -y postgresql)';
  else if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) msg = 'running as root but there is no "postgres" user to run PostgreSQL as (apt-get install -y postgresql creates it)';
  if (!msg) return null;
  if (process.env.CI === 'true') throw new Error(`${msg}: required when CI=true (.ci/run installs it)`);
  process.stderr.write(`SKIPPED: ${msg}\n`);
  return msg;
}

export interface TestPostgres {
  /** postgres://...@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  dir: string;
  /** a new empty database; its URL */
  createDatabase(name?: string): Promise<string>;
  /** stop the server at once (-m immediate): the database is "down" for fault tests */
  down(): void;
  /** start it again after down() */
  up(): void;
  /** stop the server and delete the dir (idempotent) */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

let dbCounter = 0;

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL server not found (apt-get install -y postgresql)');
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'sedna-ll-pg-'));
  const data = join(dir, 'data');
  // as root: everything under dir belongs to postgres (initdb and the server refuse root)
  const run = (prog: string, args: string[]) => {
    const argv = asRoot ? ['runuser', '-u', 'postgres', '--', join(bin, prog), ...args] : [join(bin, prog), ...args];
    return execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, timeout: 180_000 });
  };
  if (asRoot) {
    chmodSync(dir, 0o755);
    execFileSync('chown', ['postgres:', dir]);
  }
  try {
    run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-instructions', '-E', 'UTF8', '--locale=C']);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message}`);
  }
  const port = await freePort();
  const opts = `-k ${dir} -p ${port} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=32MB`;
  const log = join(dir, 'server.log');
  const up = () => {
    try {
      run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '120', '-o', opts, 'start']);
    } catch (e) {
      throw new Error(`pg_ctl start failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message}`);
    }
  };
  const down = () => {
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // not running
    }
  };
  up();
  // watchdog: if this process dies without stop(), stop the server and remove the dir
  const watchdog = join(dir, 'watchdog.sh');
  writeFileSync(
    watchdog,
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 2; done\n` +
      `${asRoot ? 'runuser -u postgres -- ' : ''}${join(bin, 'pg_ctl')} -D ${data} -m immediate stop >/dev/null 2>&1\nrm -rf ${dir}\n`,
  );
  const dog = spawn('sh', [watchdog], { detached: true, stdio: 'ignore' });
  dog.unref();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    url,
    port,
    dir,
    async createDatabase(name?: string) {
      const db = name ?? `t${process.pid}_${++dbCounter}_${Date.now() % 100000}`;
      const { default: pg } = await import('pg');
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${db}"`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${db}`;
    },
    down,
    up,
    async stop() {
      if (stopped) return;
      stopped = true;
      down();
      try {
        if (dog.pid) process.kill(dog.pid);
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
