// One `sedna-ll kb serve` replica as a child process on a fixed loopback port (so a replica
// restarted after kill -9 comes back where the load balancer expects it). Its request log
// (JSON lines, the default level: what an operator runs) goes to a file, not through a pipe
// into the bench process, so logging costs the replica, not the load generator.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { BIN, ROOT } from '../../../test/helpers/cli.js';

export interface Replica {
  name: string;
  port: number;
  url: string;
  proc: ChildProcess;
  /** SIGKILL and wait for the exit */
  kill9(): Promise<void>;
  /** start again on the same port (after kill9) */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function exited(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
  });
}

async function spawnServe(args: string[], port: number, logFile: string, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const log = openSync(logFile, 'a');
  const proc = spawn(process.execPath, [BIN, 'kb', 'serve', ...args, '--host', '127.0.0.1', '--port', String(port)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', log],
  });
  closeSync(log);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`kb serve on port ${port} did not start within 180 s (log: ${logFile})`));
    }, 180_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (/"listening":"/.test(out)) {
        clearTimeout(timer);
        proc.stdout!.removeAllListeners('data');
        proc.stdout!.resume();
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kb serve on port ${port} exited with ${code} before listening (log: ${logFile})`));
    });
  });
  return proc;
}

/** Start `kb serve <backendArgs>` on port; logFile collects its stderr across restarts. */
export async function startReplica(name: string, backendArgs: string[], port: number, logFile: string, env: NodeJS.ProcessEnv = {}): Promise<Replica> {
  const r: Replica = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    proc: await spawnServe(backendArgs, port, logFile, env),
    async kill9() {
      r.proc.kill('SIGKILL');
      await exited(r.proc);
    },
    async restart() {
      r.proc = await spawnServe(backendArgs, port, logFile, env);
    },
    async stop() {
      if (r.proc.exitCode !== null || r.proc.signalCode !== null) return;
      r.proc.kill('SIGTERM');
      const t = setTimeout(() => r.proc.kill('SIGKILL'), 15_000);
      await exited(r.proc);
      clearTimeout(t);
    },
  };
  return r;
}
