// npm run bench:fleet — the KB as a fleet service on this machine, loopback only.
//
// Per fleet size (--devices, default 100): the BASELINE (embedded SQLite, one `kb serve`, no load
// balancer) and the FLEET (PostgreSQL [+ Ceph RGW for blobs], two `kb serve` replicas behind
// HAProxy round robin with health checks). In both: devices enrolled (the first with `kb device
// add`, the rest through the same addDevice in-process), every device pushing --batches batches
// of --batch-size 3 KB samples with the sync protocol over its own keep-alive connection,
// --resend of acknowledged batches sent again, replica-1 kill -9ed once --kill-at of the batches
// are acked and restarted at once; then the audit (every acked id stored exactly once under its
// device, samples_new counter = rows inserted, nothing acked before the kill lost), then a
// --model-mb model published and pulled by every device (streamed through the replicas, and
// from presigned object-store URLs when the backend has one). CPU per process from /proc.
//
//   npm run bench:fleet -- --devices 100,500,2000 --json
//   options: --devices LIST --batches N --batch-size N --sample-bytes N --resend F --kill-at F
//            --model-mb N --pull-devices N (default all) --pull-concurrency N --repeat N
//            --fleet-store auto|postgres|sqlite --fleet-blobs auto|s3|files --only baseline|fleet
//            --framing auto|json (auto: as the edge, binary frames when the KB lists them)
//            --max-minutes N --json (one JSON document on stdout; the log goes to stderr) --out FILE
// Output: the table on stdout (or JSON), bench/out/fleet.json (or --out). Exit 1 when an audit fails.
import { cpus, loadavg } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../test/helpers/cli.js';
import { kbSupports, postgresMissingHere, rgwMissing, startBackend, type BlobsKind, type StoreKind } from './lib/fleet/backends.js';
import { capacityModel, renderCapacity } from './lib/fleet/capacity.js';
import { medianResult, renderTable } from './lib/fleet/report.js';
import { runScenario, type ScenarioOptions, type ScenarioResult } from './lib/fleet/run.js';

const { values: a } = parseArgs({
  options: {
    devices: { type: 'string', default: '100' },
    batches: { type: 'string', default: '8' },
    'batch-size': { type: 'string', default: '25' },
    'sample-bytes': { type: 'string', default: '3072' },
    resend: { type: 'string', default: '0.05' },
    'kill-at': { type: 'string', default: '0.4' },
    'model-mb': { type: 'string', default: '20' },
    'pull-devices': { type: 'string' },
    'pull-concurrency': { type: 'string', default: '32' },
    repeat: { type: 'string', default: '1' },
    'fleet-store': { type: 'string', default: 'auto' },
    'fleet-blobs': { type: 'string', default: 'auto' },
    only: { type: 'string' },
    'max-minutes': { type: 'string', default: '30' },
    seed: { type: 'string', default: '1' },
    framing: { type: 'string', default: 'auto' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  strict: true,
});

function num(name: string, v: string | undefined, min: number, max: number, int = true): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
    process.stderr.write(`bench:fleet: --${name} "${v}": expected ${int ? 'an integer' : 'a number'} in ${min}..${max}\n`);
    process.exit(2);
  }
  return n;
}

const sizes = String(a.devices)
  .split(',')
  .map((s) => num('devices', s.trim(), 1, 100_000));
const repeat = num('repeat', a.repeat, 1, 20);
function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) {
    process.stderr.write(`bench:fleet: --${name} "${v}": expected ${allowed.join(', ')}\n`);
    process.exit(2);
  }
  return v as T;
}
const fleetStoreOpt = choice('fleet-store', a['fleet-store'], ['auto', 'postgres', 'sqlite'] as const);
const fleetBlobsOpt = choice('fleet-blobs', a['fleet-blobs'], ['auto', 's3', 'files'] as const);
if (a.only !== undefined && !['baseline', 'fleet'].includes(a.only)) {
  process.stderr.write(`bench:fleet: --only "${a.only}": expected baseline or fleet\n`);
  process.exit(2);
}
const maxMinutes = num('max-minutes', a['max-minutes'], 1, 24 * 60, false);
const deadline = Date.now() + maxMinutes * 60_000;
const log = (s: string) => process.stderr.write(s + '\n');

const base = (devices: number): ScenarioOptions => ({
  devices,
  replicas: 1,
  batches: num('batches', a.batches, 1, 100_000),
  batchSize: num('batch-size', a['batch-size'], 1, 10_000),
  sampleBytes: num('sample-bytes', a['sample-bytes'], 4, 1 << 20),
  resend: num('resend', a.resend, 0, 1, false),
  killAt: num('kill-at', a['kill-at'], 0, 0.99, false),
  modelMb: num('model-mb', a['model-mb'], 0.01, 1000, false),
  pullDevices: a['pull-devices'] === undefined ? devices : num('pull-devices', a['pull-devices'], 0, 100_000),
  pullConcurrency: num('pull-concurrency', a['pull-concurrency'], 1, 10_000),
  seed: num('seed', a.seed, 0, 2 ** 31),
  framing: choice('framing', a.framing, ['auto', 'json'] as const),
  deadline,
  log,
});

// The fleet's engines: what was asked, or for auto the distributed ones when this build and this
// machine have them. What is missing is said in the log and the JSON (fleet_missing).
const fleetMissing: string[] = [];
const supports = kbSupports();
function pick<T extends string>(opt: T | 'auto', best: T, fallback: T, why: string | null): T {
  if (opt !== 'auto') {
    if (opt === best && why) {
      process.stderr.write(`bench:fleet: ${best} asked for but ${why}\n`);
      process.exit(2);
    }
    return opt;
  }
  if (why) fleetMissing.push(`${best}: ${why}`);
  return why ? fallback : best;
}
const fleetStoreKind: StoreKind = pick<StoreKind>(fleetStoreOpt, 'postgres', 'sqlite', !supports.postgres ? 'this build of kb serve has no --store (the PostgreSQL store backend is not here yet)' : postgresMissingHere());
const fleetBlobsKind: BlobsKind = pick<BlobsKind>(fleetBlobsOpt, 's3', 'files', !supports.s3 ? 'this build of kb serve has no presigned URLs (--presign-expiry)' : rgwMissing());
for (const m of fleetMissing) log(`fleet: not measured: ${m}`);
if (fleetStoreKind === 'sqlite' && a.only !== 'baseline') log('fleet: the replicas share one SQLite file (a stand-in: SQLite takes one writer at a time)');

async function scenario(kind: 'baseline' | 'fleet', devices: number): Promise<ScenarioResult> {
  const runs: ScenarioResult[] = [];
  for (let i = 0; i < repeat; i++) {
    const backend = kind === 'baseline' ? await startBackend('sqlite', 'files', log) : await startBackend(fleetStoreKind, fleetBlobsKind, log);
    log(`${kind} (${backend.name}), ${devices} devices, run ${i + 1}/${repeat}`);
    try {
      runs.push(await runScenario(backend, { ...base(devices), replicas: kind === 'baseline' ? 1 : 2 }));
    } finally {
      await backend.stop();
    }
  }
  return medianResult(runs);
}

const results: { devices: number; baseline: ScenarioResult | null; fleet: ScenarioResult | null }[] = [];
let ok = true;
for (const devices of sizes) {
  const baseline = a.only === 'fleet' ? null : await scenario('baseline', devices);
  const fleet = a.only === 'baseline' ? null : await scenario('fleet', devices);
  results.push({ devices, baseline, fleet });
  ok &&= (baseline?.audit.ok ?? true) && (fleet?.audit.ok ?? true);
}

// the capacity model from the largest fleet run (the baseline's when only that ran)
const last = results[results.length - 1];
const capacity = last && (last.fleet ?? last.baseline) ? capacityModel((last.fleet ?? last.baseline)!) : null;
const doc = {
  bench: 'fleet',
  machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gb: Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1e6), loadavg_end: loadavg().map((x) => +x.toFixed(2)) },
  node: process.version,
  options: { ...base(0), devices: sizes, deadline: undefined, log: undefined, repeat, fleet_store: fleetStoreKind, fleet_blobs: fleetBlobsKind },
  fleet_missing: fleetMissing,
  results,
  capacity,
};
const outFile = a.out ?? join(ROOT, 'bench', 'out', 'fleet.json');
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(doc, null, 2) + '\n');
if (a.json) process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
else {
  for (const r of results) process.stdout.write(`\n== ${r.devices} devices ==\n${renderTable(r.baseline, r.fleet)}\n`);
  if (capacity) process.stdout.write(`\n${renderCapacity(capacity)}\n`);
  if (fleetMissing.length && a.only !== 'baseline') process.stdout.write(`\nnot measured in the fleet run: ${fleetMissing.join('; ')}\n`);
  process.stdout.write(`\nmachine: ${doc.machine.cpus} cores (${doc.machine.cpu_model}), load average at the end ${doc.machine.loadavg_end.join(' ')}; JSON in ${outFile}\n`);
}
if (!ok) {
  log('bench:fleet: AUDIT FAILED');
  process.exit(1);
}
