/**
 * A real S3 server for tests and benches: a throw-away single-node Ceph cluster with a RADOS
 * gateway on 127.0.0.1 (scripts/ceph/start-rgw.sh; ~25 s to start). Start ONE per test file:
 *
 *   const missing = rgwMissing();              // throws under CI=true when Ceph is not installed
 *   describe('...', { skip: missing ?? false }, () => {
 *     let rgw: TestRgw;
 *     before(async () => { rgw = await startRgw(); });
 *     after(async () => { await rgw?.stop(); });
 *     // rgw.endpoint, rgw.accessKeyId, rgw.secretAccessKey, rgw.region
 *   });
 *
 * The cluster watches this process: if the test runner dies (kill -9), its watchdog stops the
 * daemons and deletes the temp dir within a few seconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'ceph');
export const START_RGW = join(SCRIPTS, 'start-rgw.sh');
export const STOP_RGW = join(SCRIPTS, 'stop-rgw.sh');
const PROGRAMS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph-authtool'];

export interface RgwInfo {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** the cluster's temp dir (ceph.conf, logs) */
  dir: string;
}

export interface TestRgw extends RgwInfo {
  /** stop the daemons and delete the dir (idempotent) */
  stop(): Promise<void>;
  /** stop only the gateway (SIGKILL): the object store is "down" for fault tests */
  killGateway(): void;
}

/**
 * Why the RGW tests cannot run here, or null when they can. Under CI=true a missing program
 * THROWS (.ci/run installs ceph-mon, ceph-osd, radosgw): the test file fails instead of skipping.
 */
export function rgwMissing(): string | null {
  const missing = PROGRAMS.filter((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0);
  if (missing.length === 0) return null;
  const msg = `${missing.join(', ')} not found (apt-get install -y ceph-mon ceph-osd radosgw)`;
  if (process.env.CI === 'true') throw new Error(`${msg}: required when CI=true (.ci/run installs them)`);
  process.stderr.write(`SKIPPED: ${msg}\n`);
  return msg;
}

/** start a cluster (waits until the gateway answers and the S3 user exists) */
export async function startRgw(opts: { timeoutMs?: number } = {}): Promise<TestRgw> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const child = spawn('bash', [START_RGW, '--watch-pid', String(process.pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`start-rgw.sh did not finish within ${timeoutMs} ms: ${err.trim()}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const line = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !line.startsWith('{')) throw new Error(`start-rgw.sh failed (exit ${code}): ${err.trim()}`);
  const info = JSON.parse(line) as RgwInfo;
  let stopped = false;
  return {
    ...info,
    async stop() {
      if (stopped || !existsSync(info.dir)) return;
      stopped = true;
      await new Promise<void>((resolve) => spawn('bash', [STOP_RGW, info.dir], { stdio: 'ignore' }).on('exit', () => resolve()));
    },
    killGateway() {
      const r = spawnSync('cat', [join(info.dir, 'run', 'client.rgw.a.pid')], { encoding: 'utf8' });
      const pid = Number(r.stdout.trim());
      if (pid > 0) process.kill(pid, 'SIGKILL');
    },
  };
}
