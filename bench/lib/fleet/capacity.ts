// The capacity model of README "Scaling out", computed from one measured fleet run: CPU per
// sample of each server process, database bytes per sample, CPU per model download. Fleet
// sizes 1 000 / 10 000 / 100 000 gateways at SAMPLES_PER_DAY each, a PEAK_FACTOR reconnect peak
// (every gateway back after an outage pushing at 10x the mean rate), replicas kept at
// TARGET_UTILISATION of one core each (a Node process serves on one core), never fewer than 2
// (one may die, as in the bench). Nothing here is measured: it multiplies what was.
import type { ScenarioResult } from './run.js';

export const SAMPLES_PER_DAY = 2000;
export const PEAK_FACTOR = 10;
export const TARGET_UTILISATION = 0.6;
export const FLEETS = [1_000, 10_000, 100_000];
export const ROLLOUT_DEVICES = 10_000;
export const ROLLOUT_MODEL_BYTES = 20e6;

export interface CapacityRow {
  gateways: number;
  mean_samples_per_s: number;
  peak_samples_per_s: number;
  /** cores the replicas need at the peak, and replicas at TARGET_UTILISATION */
  replica_cores_peak: number;
  replicas: number;
  /** cores of the database server (all its processes) and of the load balancer at the peak */
  database_cores_peak: number;
  lb_cores_peak: number;
  /** database growth */
  database_gb_per_day: number;
  database_tb_per_year: number;
  /** write rate at the peak */
  database_rows_per_s_peak: number;
  database_mb_per_s_peak: number;
}

export interface RolloutCost {
  devices: number;
  model_mb: number;
  egress_gb: number;
  /** streamed through the replicas: all bytes leave the replicas (and the LB) */
  streamed: { replica_egress_gb: number; replica_cpu_core_hours: number; lb_cpu_core_hours: number };
  /** presigned URLs: the replicas answer the index and a URL, the object store sends the bytes */
  presigned: { replica_egress_mb: number; replica_cpu_core_hours: number; object_store_egress_gb: number; object_store_cpu_core_hours: number | null } | null;
}

const sumWhere = (o: Record<string, number>, pre: string) => Object.entries(o).filter(([k]) => k.startsWith(pre)).reduce((a, [, v]) => a + (Number.isFinite(v) ? v : 0), 0);
const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

export function capacityModel(fleet: ScenarioResult): { fleets: CapacityRow[]; rollout: RolloutCost; basis: Record<string, number | string> } {
  const perK = fleet.push.cpu_ms_per_1000_samples;
  const replicaMs = sumWhere(perK, 'replica-') / 1000; // CPU ms per sample, all replicas
  // the database only: small payloads stay in it; the object store's daemons idle during pushes
  const dbMs = sumWhere(perK, 'postgres') / 1000;
  const lbMs = sumWhere(perK, 'haproxy') / 1000;
  const bytesPerSample = fleet.database.bytes_per_sample;
  const fleets = FLEETS.map((g): CapacityRow => {
    const mean = (g * SAMPLES_PER_DAY) / 86_400;
    const peak = mean * PEAK_FACTOR;
    const replicaCores = (peak * replicaMs) / 1000;
    return {
      gateways: g,
      mean_samples_per_s: r2(mean),
      peak_samples_per_s: r2(peak),
      replica_cores_peak: r2(replicaCores),
      replicas: Math.max(2, Math.ceil(replicaCores / TARGET_UTILISATION)),
      database_cores_peak: r2((peak * dbMs) / 1000),
      lb_cores_peak: r2((peak * lbMs) / 1000),
      database_gb_per_day: r2((g * SAMPLES_PER_DAY * bytesPerSample) / 1e9),
      database_tb_per_year: r2((g * SAMPLES_PER_DAY * bytesPerSample * 365) / 1e12),
      database_rows_per_s_peak: Math.round(peak),
      database_mb_per_s_peak: r2((peak * bytesPerSample) / 1e6),
    };
  });
  const stream = fleet.pull.stream;
  const pre = fleet.pull.presigned;
  // CPU per device scales with the model's size: per byte measured, times the rollout's model
  const scale = (p: NonNullable<typeof stream>) => ROLLOUT_MODEL_BYTES / Math.max(1, p.model_bytes);
  const coreHours = (msPerDevice: number) => r2((msPerDevice * ROLLOUT_DEVICES) / 3.6e6);
  const rollout: RolloutCost = {
    devices: ROLLOUT_DEVICES,
    model_mb: ROLLOUT_MODEL_BYTES / 1e6,
    egress_gb: (ROLLOUT_DEVICES * ROLLOUT_MODEL_BYTES) / 1e9,
    streamed: stream
      ? {
          replica_egress_gb: r2((ROLLOUT_DEVICES * (stream.bytes_via_replicas / Math.max(1, stream.devices)) * scale(stream)) / 1e9),
          replica_cpu_core_hours: coreHours(sumWhere(stream.cpu_ms_per_device, 'replica-') * scale(stream)),
          lb_cpu_core_hours: coreHours(sumWhere(stream.cpu_ms_per_device, 'haproxy') * scale(stream)),
        }
      : { replica_egress_gb: NaN, replica_cpu_core_hours: NaN, lb_cpu_core_hours: NaN },
    presigned: pre
      ? {
          // index + URL answers do not grow with the model
          replica_egress_mb: r2((ROLLOUT_DEVICES * (pre.bytes_via_replicas / Math.max(1, pre.devices))) / 1e6),
          replica_cpu_core_hours: coreHours(sumWhere(pre.cpu_ms_per_device, 'replica-')),
          object_store_egress_gb: r2((ROLLOUT_DEVICES * (pre.bytes_via_object_store / Math.max(1, pre.devices)) * scale(pre)) / 1e9),
          object_store_cpu_core_hours: coreHours((sumWhere(pre.cpu_ms_per_device, 'radosgw') + sumWhere(pre.cpu_ms_per_device, 'ceph')) * scale(pre)),
        }
      : null,
  };
  return {
    fleets,
    rollout,
    basis: {
      run: `${fleet.backend} x${fleet.replicas}, ${fleet.devices} devices, ${fleet.push.samples} samples`,
      replica_cpu_ms_per_sample: r3(replicaMs),
      database_cpu_ms_per_sample: r3(dbMs),
      lb_cpu_ms_per_sample: r3(lbMs),
      database_bytes_per_sample: bytesPerSample,
      samples_per_day: SAMPLES_PER_DAY,
      peak_factor: PEAK_FACTOR,
      target_utilisation: TARGET_UTILISATION,
    },
  };
}

export function renderCapacity(c: ReturnType<typeof capacityModel>): string {
  const b = c.basis;
  const lines = [
    `capacity model from ${b.run}: replica ${b.replica_cpu_ms_per_sample} CPU ms/sample, database ${b.database_cpu_ms_per_sample}, LB ${b.lb_cpu_ms_per_sample}, ${b.database_bytes_per_sample} database bytes/sample;`,
    `${b.samples_per_day} samples per gateway per day, a ${b.peak_factor}x reconnect peak, replicas at ${Number(b.target_utilisation) * 100}% of a core (at least 2)`,
  ];
  const head = ['gateways', 'mean/s', 'peak/s', 'replica cores', 'replicas', 'db cores', 'LB cores', 'db GB/day', 'db TB/year', 'db MB/s peak'];
  const rows = c.fleets.map((r) => [r.gateways, r.mean_samples_per_s, r.peak_samples_per_s, r.replica_cores_peak, r.replicas, r.database_cores_peak, r.lb_cores_peak, r.database_gb_per_day, r.database_tb_per_year, r.database_mb_per_s_peak].map(String));
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows]) lines.push(r.map((x, i) => x.padStart(w[i])).join('  '));
  const ro = c.rollout;
  lines.push(`rollout of a ${ro.model_mb} MB model to ${ro.devices} devices = ${ro.egress_gb} GB egress:`);
  lines.push(
    Number.isFinite(ro.streamed.replica_egress_gb)
      ? `  streamed through the replicas: ${ro.streamed.replica_egress_gb} GB out of the replicas, ${ro.streamed.replica_cpu_core_hours} replica core-hours, ${ro.streamed.lb_cpu_core_hours} LB core-hours`
      : '  streamed through the replicas: not measured in this run (no pull phase)',
  );
  lines.push(
    ro.presigned
      ? `  presigned URLs: ${ro.presigned.replica_egress_mb} MB out of the replicas, ${ro.presigned.replica_cpu_core_hours} replica core-hours; ${ro.presigned.object_store_egress_gb} GB from the object store (${ro.presigned.object_store_cpu_core_hours} core-hours of its processes)`
      : '  presigned URLs: not measured in this run (no object store)',
  );
  return lines.join('\n');
}
