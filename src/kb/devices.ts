// Device enrolment: a device is an id, a channel, and a bearer token the KB stores hashed.
import { UsageError, ConflictError } from '../errors.js';
import type { ChannelStore, CounterStore, DeviceRecord, DeviceStore } from './store.js';

/** what enrolment touches */
type EnrolStore = DeviceStore & ChannelStore & CounterStore;
import { newToken, hashToken } from './tokens.js';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkName(what: string, v: string): string {
  if (!NAME_RE.test(v)) throw new UsageError(`${what} "${v}": expected 1-128 characters of A-Z a-z 0-9 . _ - (not starting with . _ -)`);
  return v;
}

/** Enrol a device; the token is returned once and never stored in clear. */
export async function addDevice(store: EnrolStore, id: string, channel = 'stable'): Promise<{ device: DeviceRecord; token: string }> {
  checkName('device id', id);
  checkName('channel', channel);
  if (await store.getDevice(id)) throw new ConflictError(`device "${id}" already exists (revoke it or pick another id)`);
  const token = newToken('dev');
  const device = await store.addDevice({ id, token_hash: hashToken(token), channel });
  if (!(await store.getChannel(channel))) await store.upsertChannel(channel, {});
  await store.logEvent('device_add', { id, channel });
  return { device, token };
}

export async function revokeDevice(store: EnrolStore, id: string): Promise<DeviceRecord> {
  if (!(await store.revokeDevice(id))) throw new UsageError(`device "${id}": unknown device (see "sedna-ll kb device ls")`);
  await store.logEvent('device_revoke', { id });
  return (await store.getDevice(id))!;
}

export async function setDeviceChannel(store: EnrolStore, id: string, channel: string): Promise<DeviceRecord> {
  checkName('channel', channel);
  if (!(await store.setDeviceChannel(id, channel))) throw new UsageError(`device "${id}": unknown device (see "sedna-ll kb device ls")`);
  if (!(await store.getChannel(channel))) await store.upsertChannel(channel, {});
  await store.logEvent('device_channel', { id, channel });
  return (await store.getDevice(id))!;
}
