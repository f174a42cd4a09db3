// One fleet scenario: a backend, N `kb serve` replicas (behind HAProxy when N > 1), enrolled
// devices pushing batches while one replica is kill -9ed and restarted, the audit, then every
// device pulling the published model (streamed through the replicas, and from presigned URLs
// when the backend has an object store). CPU of every process is read at the phase boundaries.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { addDevice } from '../../../src/kb/devices.js';
import { writeRandomMlp } from '../../../test/helpers/models.js';
import { auditPush, type AuditResult } from './audit.js';
import { kbCli, type KbBackend } from './backends.js';
import { closeClients, openClients, pullFleet, PUSH, pushFleet, type FleetDevice, type PullTally, type PushTally } from './devices.js';
import { startHaproxy, type Haproxy } from './haproxy.js';
import { Latencies, type LatencySummary } from './latency.js';
import { freePort } from './net.js';
import { CpuTracker, cpuDelta } from './proc-cpu.js';
import { startReplica, type Replica } from './replica.js';
import { makePayloadPool } from './wire.js';

export interface ScenarioOptions {
  devices: number;
  replicas: number;
  batches: number;
  batchSize: number;
  sampleBytes: number;
  resend: number;
  /** fraction of all batches acked when a replica is kill -9ed (<= 0: no kill) */
  killAt: number;
  modelMb: number;
  /** devices that pull (default all); 0: no pull phase */
  pullDevices: number;
  pullConcurrency: number;
  seed: number;
  deadline: number;
  /** auto: what the edge does (frames when the KB lists them); json: the v1 JSON document */
  framing: 'auto' | 'json';
  log: (s: string) => void;
}

export interface PhaseResult {
  seconds: number;
  latency: Record<string, LatencySummary & { status_5xx: number; network_errors: number; statuses: Record<string, number> }>;
  retries: number;
  cpu_ms: Record<string, number>;
}

export interface PushResult extends PhaseResult {
  /** the push body format the devices negotiated */
  framing: string | null;
  samples: number;
  batches: number;
  resent_batches: number;
  samples_per_s: number;
  cpu_ms_per_1000_samples: Record<string, number>;
  /** the kill -9: when, how long until the replica listened again, throughput before it, the
   * restarted process's start-up CPU (not in cpu_ms: that is the steady cost of samples) */
  kill: { replica: string; at_s: number; restarted_after_s: number; acked_before: number; samples_per_s_before: number; restart_cpu_ms: number } | null;
  lb?: LbCounters;
}

export interface PullResult extends PhaseResult {
  mode: 'stream' | 'presigned';
  devices: number;
  model_bytes: number;
  gb_per_s: number;
  bytes_via_replicas: number;
  bytes_via_object_store: number;
  cpu_ms_per_device: Record<string, number>;
  failures: number;
  lb?: LbCounters;
}

export interface LbCounters {
  /** 5xx the LB answered or passed on */
  status_5xx: number;
  bytes_out: number;
  redispatched: number;
  connection_retries: number;
}

/** 5xx lines of the replicas' request logs (JSON lines), with the first error of each kind. */
function replica5xx(files: string[]): { count: number; errors: Record<string, number> } {
  const errors: Record<string, number> = {};
  let count = 0;
  for (const f of files) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.includes('"status":5')) continue;
      try {
        const l = JSON.parse(line) as { status?: number; error?: string; route?: string };
        if (!l.status || l.status < 500) continue;
        count++;
        const k = `${l.status} ${l.route ?? ''}: ${(l.error ?? '').slice(0, 120)}`;
        errors[k] = (errors[k] ?? 0) + 1;
      } catch {
        /* not a request line */
      }
    }
  }
  return { count, errors };
}

export interface ScenarioResult {
  backend: string;
  replicas: number;
  load_balancer: string | null;
  devices: number;
  loadavg_start: number[];
  push: PushResult;
  audit: AuditResult;
  /** growth of the database during the push phase (tables + indexes, checkpointed) */
  database: { bytes: number; bytes_per_sample: number; rows_per_s: number; mb_per_s: number };
  pull: { stream: PullResult | null; presigned: PullResult | null; presigned_missing: string | null };
  /** 5xx the replicas themselves answered (from their request logs), by status, route and error */
  replica_5xx: { count: number; errors: Record<string, number> };
}

const r1 = (x: number) => Math.round(x * 10) / 10;

function per(cpu: Record<string, number>, n: number, unit: number): Record<string, number> {
  const o: Record<string, number> = {};
  for (const [k, v] of Object.entries(cpu)) o[k] = n > 0 ? r1((v / n) * unit) : NaN;
  return o;
}

function lbDelta(a: Awaited<ReturnType<Haproxy['stats']>>, b: Awaited<ReturnType<Haproxy['stats']>>): LbCounters {
  const fa = a['kb/FRONTEND'];
  const fb = b['kb/FRONTEND'];
  const ba = a['replicas/BACKEND'];
  const bb = b['replicas/BACKEND'];
  return {
    status_5xx: fb.hrsp_5xx - fa.hrsp_5xx,
    bytes_out: fb.bout - fa.bout,
    redispatched: bb.wredis - ba.wredis,
    connection_retries: bb.wretr - ba.wretr,
  };
}

export async function runScenario(backend: KbBackend, o: ScenarioOptions): Promise<ScenarioResult> {
  const log = o.log;
  const loadStart = loadavg().map((x) => +x.toFixed(2));
  const replicas: Replica[] = [];
  let lb: Haproxy | null = null;
  const devices: FleetDevice[] = [];
  try {
    // ---- devices: the first through the real CLI, the rest through the same addDevice in-process
    const ids = Array.from({ length: o.devices }, (_, i) => `gw-${String(i).padStart(5, '0')}`);
    const first = JSON.parse(kbCli(backend, ['device', 'add', ids[0], '--json'])) as { token: string };
    devices.push({ id: ids[0], token: first.token });
    const store = await backend.openStore();
    try {
      for (const id of ids.slice(1)) devices.push({ id, token: (await addDevice(store, id, 'stable')).token });
    } finally {
      await store.close();
    }
    log(`  ${backend.name}: ${o.devices} devices enrolled`);

    // ---- replicas and the load balancer
    const tracker = new CpuTracker();
    backend.trackEngines(tracker);
    for (let i = 0; i < o.replicas; i++) {
      const name = `replica-${i + 1}`;
      const r = await startReplica(name, [...backend.args, ...backend.serveArgs], await freePort(), join(backend.workDir, `${name}.log`), backend.env);
      replicas.push(r);
      tracker.add(name, r.proc.pid!);
    }
    if (o.replicas > 1) {
      lb = await startHaproxy(replicas.map((r) => ({ name: r.name, port: r.port })));
      await lb.waitAllUp();
      tracker.add('haproxy', lb.pid);
    }
    const url = lb ? lb.url : replicas[0].url;
    log(`  ${o.replicas} replica(s)${lb ? ' behind HAProxy' : ''} at ${url}`);
    await openClients(devices, url);
    const pool = makePayloadPool(512, o.sampleBytes, o.seed);

    // ---- push, with a kill -9 of replica-1 mid-run
    const lat = new Latencies();
    const tally: PushTally = { framing: null, batchesAcked: 0, samplesAcked: 0, resent: 0, retries: 0, acked: new Map(), failures: [] };
    const totalBatches = o.devices * o.batches;
    const killAtBatches = o.killAt > 0 ? Math.max(1, Math.floor(totalBatches * o.killAt)) : Infinity;
    let kill: PushResult['kill'] = null;
    let ackedBeforeKill: Map<string, string[]> | null = null;
    let restarted: Promise<void> | null = null;
    const lb0 = lb ? await lb.stats() : null;
    // the database's size before the pushes: growth per sample, not the empty schema's size
    const dbBytes0 = backend.databaseBytes();
    const c0 = tracker.sample();
    const t0 = performance.now();
    const victim = replicas[0];
    const onAck = () => {
      if (restarted || tally.batchesAcked < killAtBatches) return;
      ackedBeforeKill = new Map([...tally.acked].map(([d, s]) => [d, [...s]]));
      const ackedBefore = tally.samplesAcked;
      const at = (performance.now() - t0) / 1000;
      tracker.retire(victim.name, victim.proc.pid!);
      restarted = (async () => {
        await victim.kill9();
        log(`  kill -9 ${victim.name} at ${at.toFixed(1)} s (${tally.batchesAcked}/${totalBatches} batches acked)`);
        await victim.restart();
        const startupMs = tracker.add(victim.name, victim.proc.pid!, { fromNow: true });
        kill = {
          replica: victim.name,
          at_s: r1(at),
          restarted_after_s: r1((performance.now() - t0) / 1000 - at),
          acked_before: ackedBefore,
          samples_per_s_before: Math.round(ackedBefore / at),
          restart_cpu_ms: Math.round(startupMs),
        };
        log(`  ${victim.name} listening again after ${kill.restarted_after_s} s`);
      })();
    };
    await pushFleet(devices, pool, { batches: o.batches, batchSize: o.batchSize, resend: o.resend, seed: o.seed, deadline: o.deadline, framing: o.framing }, lat, tally, onAck);
    if (restarted) await restarted;
    const pushSeconds = (performance.now() - t0) / 1000;
    const c1 = tracker.sample();
    const lb1 = lb ? await lb.stats() : null;
    const pushCpu = cpuDelta(c0, c1);
    const push: PushResult = {
      framing: tally.framing,
      seconds: r1(pushSeconds),
      samples: tally.samplesAcked,
      batches: tally.batchesAcked,
      resent_batches: tally.resent,
      samples_per_s: Math.round(tally.samplesAcked / pushSeconds),
      latency: lat.summary(),
      retries: tally.retries,
      cpu_ms: pushCpu,
      cpu_ms_per_1000_samples: per(pushCpu, tally.samplesAcked, 1000),
      kill,
      ...(lb0 && lb1 ? { lb: lbDelta(lb0, lb1) } : {}),
    };
    log(`  push: ${push.samples} samples in ${push.seconds} s = ${push.samples_per_s}/s, ${push.retries} retries, p99 ${push.latency[PUSH]?.p99} ms`);

    // ---- audit
    if (lb) await lb.waitAllUp();
    const audit = await auditPush(url, backend.adminToken, tally, ackedBeforeKill);
    log(`  audit: ${audit.ok ? 'OK' : 'FAILED: ' + audit.problems.join('; ')} (${audit.stored_rows} rows, ${audit.acked_ids} acked ids, counter ${audit.counter_samples_new})`);
    const grown = backend.databaseBytes() - dbBytes0;
    const database = {
      bytes: grown,
      bytes_per_sample: Math.round(grown / Math.max(1, audit.stored_rows)),
      rows_per_s: Math.round(audit.stored_rows / pushSeconds),
      mb_per_s: r1(grown / 1e6 / pushSeconds),
    };

    // ---- pull: publish a model, every device fetches it
    const pullResult: ScenarioResult['pull'] = { stream: null, presigned: null, presigned_missing: null };
    const pullers = devices.slice(0, Math.min(o.pullDevices, devices.length));
    if (pullers.length > 0) {
      const dim = Math.round(Math.sqrt((o.modelMb * 1e6) / 4));
      const model = writeRandomMlp(backend.workDir, 'fleet-model', [dim, dim, 10], o.seed);
      kbCli(backend, ['task', 'add', model, '--task', 'global', '--fallback'], 'kb task add');
      kbCli(backend, ['publish', '--json'], 'kb publish');
      const modes: ('stream' | 'presigned')[] = backend.presigned ? ['stream', 'presigned'] : ['stream'];
      if (!backend.presigned) pullResult.presigned_missing = `backend ${backend.name}: blobs are files of the data directory (presigned URLs need S3 blobs)`;
      for (const mode of modes) {
        const plat = new Latencies();
        const pt: PullTally = { devices: 0, bytes: 0, bytesViaReplicas: 0, bytesViaObjectStore: 0, retries: 0, failures: [] };
        const s0 = lb ? await lb.stats() : null;
        const p0 = tracker.sample();
        const tp = performance.now();
        await pullFleet(pullers, { publicKeyPem: backend.publicKeyPem, mode, concurrency: o.pullConcurrency, deadline: o.deadline }, plat, pt);
        const secs = (performance.now() - tp) / 1000;
        const cpu = cpuDelta(p0, tracker.sample());
        const s1 = lb ? await lb.stats() : null;
        const res: PullResult = {
          mode,
          seconds: r1(secs),
          devices: pt.devices,
          model_bytes: pt.devices ? Math.round(pt.bytes / pt.devices) : 0,
          gb_per_s: Math.round((pt.bytes / 1e9 / secs) * 100) / 100,
          bytes_via_replicas: pt.bytesViaReplicas,
          bytes_via_object_store: pt.bytesViaObjectStore,
          latency: plat.summary(),
          retries: pt.retries,
          failures: pt.failures.length,
          cpu_ms: cpu,
          cpu_ms_per_device: per(cpu, pt.devices, 1),
          ...(s0 && s1 ? { lb: lbDelta(s0, s1) } : {}),
        };
        if (pt.failures.length) log(`  pull ${mode}: ${pt.failures.length} device(s) failed: ${pt.failures[0]}`);
        log(`  pull ${mode}: ${pt.devices} devices x ${(res.model_bytes / 1e6).toFixed(1)} MB in ${res.seconds} s (${res.gb_per_s} GB/s)`);
        pullResult[mode] = res;
      }
    }
    return {
      backend: backend.name,
      replicas: o.replicas,
      load_balancer: lb ? 'haproxy roundrobin' : null,
      devices: o.devices,
      loadavg_start: loadStart,
      push,
      audit,
      database,
      pull: pullResult,
      replica_5xx: replica5xx(replicas.map((r) => join(backend.workDir, `${r.name}.log`))),
    };
  } finally {
    await closeClients(devices);
    if (lb) await lb.stop();
    for (const r of replicas) await r.stop();
  }
}

