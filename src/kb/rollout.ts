// Fleet rollout on the KB: channels (named version pointers devices follow), rolling a version
// out to a channel, promoting one channel's version to another, and aborting a rollout when
// too many of the channel's devices failed their trial of it (the channel falls back to the
// version it had before). Built on the KbStore interface only (channels.config / .state are
// this module's), so it works the same over any backend.
//
// Abort rule: among the channel's devices whose last report carries a decided trial (pass or
// fail) of the version being rolled out, when at least abort_min_reports reported and at least
// abort_fail_pct % of them failed, the rollout is aborted: the channel points at its previous
// version again and the state records why. Devices that failed already rolled back locally;
// the others get the channel's version at their next sync (channel fallback: they send the
// version they run, `active`, and GET /v1/index answers the channel's index when it differs).
import { ReportedError, UsageError, NotFoundError } from '../errors.js';
import type { DeviceReport } from '../format/protocol.js';
import { checkName } from './devices.js';
import type { ChannelRecord, ChannelStore, CounterStore, DeviceRecord, DeviceStore, KbStore, VersionStore } from './store.js';

/** what the rollout commands read and write */
export type RolloutStore = ChannelStore & DeviceStore & VersionStore & CounterStore;

export interface RolloutConfig {
  /** abort when at least this % of reporting devices failed the trial */
  abort_fail_pct: number;
  /** ... and at least this many devices reported a decided trial */
  abort_min_reports: number;
}

export const DEFAULT_ROLLOUT_CONFIG: RolloutConfig = { abort_fail_pct: 50, abort_min_reports: 2 };

export interface RolloutState {
  version: number;
  /** the channel's version before this rollout (the fallback) */
  from: number | null;
  started_at: number;
  status: 'rolling' | 'aborted';
  aborted_at?: number;
  reason?: string;
}

export function channelConfig(c: ChannelRecord | null): RolloutConfig {
  return { ...DEFAULT_ROLLOUT_CONFIG, ...((c?.config ?? {}) as Partial<RolloutConfig>) };
}

export function rolloutState(c: ChannelRecord | null): RolloutState | null {
  const r = (c?.state as { rollout?: RolloutState } | undefined)?.rollout;
  return r && typeof r.version === 'number' ? r : null;
}

function checkConfig(cfg: Partial<RolloutConfig>): void {
  if (cfg.abort_fail_pct !== undefined && !(cfg.abort_fail_pct > 0 && cfg.abort_fail_pct <= 100)) {
    throw new UsageError(`--abort-pct ${cfg.abort_fail_pct}: expected a percentage in (0, 100]`);
  }
  if (cfg.abort_min_reports !== undefined && !(Number.isInteger(cfg.abort_min_reports) && cfg.abort_min_reports >= 1)) {
    throw new UsageError(`--min-reports ${cfg.abort_min_reports}: expected an integer >= 1`);
  }
}

/** Create a channel (or update its abort settings). */
export async function addChannel(store: RolloutStore, name: string, cfg: Partial<RolloutConfig> = {}): Promise<ChannelRecord> {
  checkName('channel', name);
  checkConfig(cfg);
  const cur = await store.getChannel(name);
  const config = { ...(cur?.config ?? {}), ...Object.fromEntries(Object.entries(cfg).filter(([, v]) => v !== undefined)) };
  const c = await store.upsertChannel(name, { config });
  await store.logEvent(cur ? 'channel_update' : 'channel_add', { name, config });
  return c;
}

export interface ChannelView {
  name: string;
  version: number | null;
  previous_version: number | null;
  devices: number;
  config: RolloutConfig;
  rollout: (RolloutState & { reported: number; failed: number; passed: number }) | null;
}

/** Decided trial results of a version among a channel's devices. */
function tally(devices: DeviceRecord[], version: number): { reported: number; failed: number; passed: number } {
  let failed = 0;
  let passed = 0;
  for (const d of devices) {
    if (d.revoked_at) continue;
    const t = d.last_report?.trial;
    if (!t || t.version !== version) continue;
    if (t.result === 'fail') failed++;
    else if (t.result === 'pass') passed++;
  }
  return { reported: failed + passed, failed, passed };
}

export async function listChannels(store: RolloutStore): Promise<ChannelView[]> {
  const out: ChannelView[] = [];
  for (const c of await store.listChannels()) {
    const devices = await store.listDevices({ channel: c.name });
    // show the recorded rollout while it is current or just fell back; else the implicit one
    const rec = rolloutState(c);
    const r = rec && (rec.version === c.version || (rec.status === 'aborted' && rec.from === c.version)) ? rec : currentRollout(c);
    out.push({
      name: c.name,
      version: c.version,
      previous_version: c.previous_version,
      devices: devices.filter((d) => !d.revoked_at).length,
      config: channelConfig(c),
      rollout: r ? { ...r, ...tally(devices, r.version) } : null,
    });
  }
  return out;
}

/** Point a channel at a published version; its current version is remembered as the fallback. */
export async function rolloutVersion(store: RolloutStore, version: number, channel: string): Promise<ChannelRecord> {
  checkName('channel', channel);
  if (!(await store.getVersion(version))) throw new UsageError(`KB version ${version} does not exist (see "sedna-ll kb versions")`);
  const cur = await store.getChannel(channel);
  if (!cur) throw new UsageError(`channel "${channel}" does not exist; create it with "sedna-ll kb channel add ${channel}"`);
  if (cur.version === version) return cur;
  const from = cur.version;
  await store.setChannelVersion(channel, version);
  const state: RolloutState = { version, from, started_at: Date.now(), status: 'rolling' };
  const c = await store.upsertChannel(channel, { state: { ...cur.state, rollout: state } });
  await store.logEvent('rollout', { channel, version, from });
  return c;
}

/** Roll the version of channel `from` out to channel `to` (refused while that rollout is failing). */
export async function promote(store: RolloutStore, from: string, to: string): Promise<ChannelRecord> {
  const src = await store.getChannel(from);
  if (!src) throw new UsageError(`channel "${from}" does not exist`);
  if (src.version === null) throw new NotFoundError(`channel "${from}" has no version to promote`);
  const r = rolloutState(src);
  if (r && r.status === 'aborted' && r.version !== src.version) {
    // the channel fell back; promoting its fallback is allowed, but say what happened
    await store.logEvent('promote_after_abort', { from, to, version: src.version, aborted: r.version });
  }
  const devices = await store.listDevices({ channel: from });
  const t = tally(devices, src.version);
  if (t.failed > 0) {
    throw new ReportedError(`channel "${from}": ${t.failed} of ${t.reported} reporting devices failed the trial of version ${src.version}; not promoting it to "${to}"`);
  }
  const c = await rolloutVersion(store, src.version, to);
  await store.logEvent('promote', { from, to, version: src.version, passed: t.passed });
  return c;
}

/**
 * Called with every device report (kb/report.ts): when the report carries a decided trial of the
 * version being rolled out on the device's channel, re-count and abort if the threshold is met.
 * Returns the abort, if this report caused one. The decision is a compare-and-set in one store
 * transaction (the channel is locked while it is read, decided and written): two replicas
 * evaluating reports of the same channel at once abort once.
 */
export async function onDeviceReport(store: Pick<KbStore, 'tx'>, device: DeviceRecord, report: DeviceReport): Promise<{ aborted: RolloutState } | null> {
  const t = report.trial;
  if (!t || t.result === 'pending') return null;
  return store.tx((tx) => evaluate(tx, device.channel));
}

/**
 * The rollout a channel is in: the recorded one (kb rollout / promote), else an implicit one for
 * a version that got there by `kb publish --channel` (fallback: the channel's previous version,
 * unless that is a version whose rollout was aborted).
 */
export function currentRollout(c: ChannelRecord): RolloutState | null {
  if (c.version === null) return null;
  const r = rolloutState(c);
  if (r && r.version === c.version) return r;
  const from = r && r.status === 'aborted' && r.version === c.previous_version ? null : c.previous_version;
  return { version: c.version, from, started_at: c.updated_at, status: 'rolling' };
}

async function evaluate(store: ChannelStore & DeviceStore & CounterStore, channel: string): Promise<{ aborted: RolloutState } | null> {
  const c = await store.lockChannel(channel);
  const r = c ? currentRollout(c) : null;
  if (!c || !r || r.status !== 'rolling') return null;
  const cfg = channelConfig(c);
  const t = tally(await store.listDevices({ channel }), r.version);
  if (t.reported < cfg.abort_min_reports || (t.failed * 100) / t.reported < cfg.abort_fail_pct) return null;
  const reason = `${t.failed} of ${t.reported} reporting devices failed the trial of version ${r.version} (threshold ${cfg.abort_fail_pct}% of at least ${cfg.abort_min_reports})`;
  const aborted: RolloutState = { ...r, status: 'aborted', aborted_at: Date.now(), reason };
  if (r.from !== null) await store.setChannelVersion(channel, r.from);
  else await store.upsertChannel(channel, { version: null, previous_version: r.version });
  await store.upsertChannel(channel, { state: { ...c.state, rollout: aborted } });
  await store.logEvent('rollout_aborted', { channel, version: r.version, fallback: r.from, failed: t.failed, reported: t.reported });
  return { aborted };
}

export interface FleetRow {
  id: string;
  channel: string;
  active_version: number | null;
  last_seen: string | null;
  last_trial: { version: number; result: string; reason?: string } | null;
  revoked: boolean;
}

/** Each device: channel, active version, last seen, last trial result. */
export async function fleet(store: RolloutStore): Promise<FleetRow[]> {
  return (await store.listDevices()).map((d) => ({
    id: d.id,
    channel: d.channel,
    active_version: d.active_version,
    last_seen: d.last_seen ? new Date(d.last_seen).toISOString() : null,
    last_trial: d.last_report?.trial ? { version: d.last_report.trial.version, result: d.last_report.trial.result, ...(d.last_report.trial.reason ? { reason: d.last_report.trial.reason } : {}) } : null,
    revoked: !!d.revoked_at,
  }));
}
