/**
 * A real KB server for tests: `sedna-ll kb init` a data dir, `kb device add` one device, and
 * `sedna-ll kb serve` as a child process on a free loopback port.
 *
 *   const kb = await startTestKb();            // or startTestKb({ deviceId: 'gw-1', channel: 'canary' })
 *   // kb.url, kb.deviceToken, kb.publicKeyPem, kb.adminToken, kb.dataDir
 *   await kb.kill9(); await kb.restart();      // crash + restart on the same port and data
 *   const other = kb.addDevice('gw-2');        // { id, token }
 *   kb.cli(['samples', 'ls', '--json'])        // runs `sedna-ll kb <args> --data <dataDir>`
 *   await kb.stop();                           // SIGTERM, wait, remove the temp data dir
 *
 * Tests must call stop() (e.g. in t.after / after()). Requires a build (dist/) like test/helpers/cli.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { sedna, sednaSpawn, tempDir, type RunResult } from './cli.js';

export interface TestKb {
  url: string;
  port: number;
  adminToken: string;
  deviceId: string;
  deviceToken: string;
  publicKeyPem: string;
  dataDir: string;
  /** the running `kb serve` child process */
  proc: ChildProcess;
  /** everything the server wrote to stderr so far (with verbose: one line per request) */
  stderr(): string;
  /** enrol another device; returns its token */
  addDevice(id: string, channel?: string): { id: string; token: string };
  /** run `sedna-ll kb <args...> --data <dataDir>` synchronously */
  cli(args: string[], input?: string): RunResult;
  /** SIGKILL the server and wait for it to exit (data dir kept) */
  kill9(): Promise<void>;
  /** start the server again on the same port and data dir (after kill9 or stop({keep:true})); serveArgs replace the ones it ran with */
  restart(opts?: { serveArgs?: string[] }): Promise<void>;
  /** SIGTERM (graceful), wait; removes the data dir unless keep or it was given by the caller */
  stop(opts?: { keep?: boolean }): Promise<void>;
}

export interface TestKbOptions {
  /** existing or wanted data dir; default: a new temp dir removed by stop() */
  dataDir?: string;
  deviceId?: string;
  channel?: string;
  /** extra `kb serve` arguments, e.g. ['--body-limit', '100000'] */
  serveArgs?: string[];
  /** log one line per request to the child's stderr */
  verbose?: boolean;
  env?: NodeJS.ProcessEnv;
}

function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r;
}

function exited(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
  });
}

async function spawnServe(dataDir: string, port: number, args: string[], env?: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; url: string; port: number; err: { text: string } }> {
  const proc = sednaSpawn(['kb', 'serve', '--data', dataDir, '--host', '127.0.0.1', '--port', String(port), ...args], { env });
  const err = { text: '' };
  proc.stderr!.on('data', (c: Buffer) => (err.text += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`kb serve did not start within 120 s: ${err.text.trim()}`));
    }, 120_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /"listening":"([^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kb serve exited with ${code} before listening: ${err.text.trim()}`));
    });
  });
  return { proc, url, port: Number(new URL(url).port), err };
}

/** Init a KB, enrol a device and start `sedna-ll kb serve` on a free loopback port. */
export async function startTestKb(opts: TestKbOptions = {}): Promise<TestKb> {
  const own = opts.dataDir ? null : tempDir('sedna-ll-kb-');
  const dataDir = opts.dataDir ?? own!.dir;
  const env = opts.env;
  const init = JSON.parse(must(sedna(['kb', 'init', '--data', dataDir, '--json'], { env }), 'kb init').stdout) as { admin_token: string; public_key: string };
  const deviceId = opts.deviceId ?? 'edge-1';
  const addDevice = (id: string, channel = 'stable') => {
    const r = JSON.parse(must(sedna(['kb', 'device', 'add', id, '--channel', channel, '--data', dataDir, '--json'], { env }), `kb device add ${id}`).stdout) as { token: string };
    return { id, token: r.token };
  };
  const dev = addDevice(deviceId, opts.channel ?? 'stable');
  const serveArgs = (extra: string[]) => [...extra, ...(opts.verbose ? ['--verbose'] : [])];
  let args = serveArgs(opts.serveArgs ?? []);
  let s = await spawnServe(dataDir, 0, args, env);
  let logs = '';

  const kb: TestKb = {
    url: s.url,
    port: s.port,
    adminToken: init.admin_token,
    deviceId,
    deviceToken: dev.token,
    publicKeyPem: init.public_key,
    dataDir,
    proc: s.proc,
    stderr: () => logs + s.err.text,
    addDevice,
    cli: (a, input) => sedna(['kb', ...a, '--data', dataDir], { env, input }),
    async kill9() {
      s.proc.kill('SIGKILL');
      await exited(s.proc);
    },
    async restart(o = {}) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) throw new Error('restart: the server is still running (kill9 or stop({keep:true}) first)');
      logs += s.err.text;
      if (o.serveArgs) args = serveArgs(o.serveArgs);
      s = await spawnServe(dataDir, kb.port, args, env);
      kb.proc = s.proc;
    },
    async stop(o = {}) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) {
        s.proc.kill('SIGTERM');
        const t = setTimeout(() => s.proc.kill('SIGKILL'), 10_000);
        await exited(s.proc);
        clearTimeout(t);
      }
      if (own && !o.keep) own.cleanup();
    },
  };
  return kb;
}
