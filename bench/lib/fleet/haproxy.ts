// HAProxy (Debian's) in front of the KB replicas: round robin, health checks on /healthz every
// second (a replica is out after 3 failed checks or at once on a refused connection, back after
// 2 good checks), connection failures redispatched to the other replica. Config and stats socket live in a temp dir; it runs in the
// foreground (-db) as our child. Its stats (`show stat`) give the LB's own view: 5xx answered,
// bytes sent to clients (egress), server state.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './net.js';

export interface HaproxyStat {
  name: string;
  status: string;
  /** responses by class */
  hrsp_5xx: number;
  /** bytes in from clients / out to clients */
  bin: number;
  bout: number;
  /** requests redispatched / connection retries */
  wredis: number;
  wretr: number;
}

export interface Haproxy {
  url: string;
  pid: number;
  proc: ChildProcess;
  stats(): Promise<Record<string, HaproxyStat>>;
  /** resolves once every server is UP */
  waitAllUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startHaproxy(servers: { name: string; port: number }[], opts: { maxconnPerServer?: number } = {}): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'sedna-fleet-haproxy-'));
  const port = await freePort();
  const sock = join(dir, 'stats.sock');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global
  # each connection costs 2 fds (client + server side): stay under the usual 20 000 fd limit
  maxconn 8000
  stats socket ${sock} mode 600 level admin

defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 120s
  timeout queue 120s
  # a connection refused by a dead replica is retried on the other one (redispatch on every
  # retry) and marks it down at once (observe layer4 below): without that, retries within the
  # ~3 s before the health check noticed went to the dead replica again and HAProxy answered
  # 503 itself (240-404 of them with 500 devices). The health check must not be twitchy: on
  # this loaded machine a 500 ms check timeout took BOTH replicas out. At most 32 requests in
  # a replica at once; the rest wait in HAProxy's queue, not inside Node.
  option redispatch 1
  retries 3
  timeout check 10s

frontend kb
  bind 127.0.0.1:${port}
  default_backend replicas

backend replicas
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 1s fall 3 rise 2 observe layer4 error-limit 1 on-error mark-down maxconn ${opts.maxconnPerServer ?? 32}
${servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check`).join('\n')}
`,
  );
  const proc = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));

  const command = (cmd: string) =>
    new Promise<string>((resolve, reject) => {
      const c = connect(sock);
      let out = '';
      c.on('connect', () => c.end(cmd + '\n'));
      c.on('data', (d) => (out += d.toString()));
      c.on('end', () => resolve(out));
      c.on('error', reject);
    });

  const stats = async () => {
    const csv = (await command('show stat')).trim().split('\n');
    const head = csv[0].replace(/^# /, '').split(',');
    const col = (r: string[], n: string) => r[head.indexOf(n)];
    const out: Record<string, HaproxyStat> = {};
    for (const line of csv.slice(1)) {
      const r = line.split(',');
      const name = `${col(r, 'pxname')}/${col(r, 'svname')}`;
      out[name] = {
        name,
        status: col(r, 'status'),
        hrsp_5xx: Number(col(r, 'hrsp_5xx') || 0),
        bin: Number(col(r, 'bin') || 0),
        bout: Number(col(r, 'bout') || 0),
        wredis: Number(col(r, 'wredis') || 0),
        wretr: Number(col(r, 'wretr') || 0),
      };
    }
    return out;
  };

  const hp: Haproxy = {
    url: `http://127.0.0.1:${port}`,
    pid: proc.pid!,
    proc,
    stats,
    async waitAllUp(timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`haproxy exited (${proc.exitCode}): ${err.trim()}`);
        try {
          const s = await stats();
          if (servers.every((v) => s[`replicas/${v.name}`]?.status === 'UP')) return;
        } catch {
          /* socket not there yet */
        }
        if (Date.now() > end) throw new Error(`haproxy: not every replica UP within ${timeoutMs} ms: ${err.trim()}`);
        await sleep(100);
      }
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return hp;
}
