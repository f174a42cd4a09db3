// What the KB does with a device report (POST /v1/report, sent on every sync): remember the
// device's active version and health, and record trial outcomes as events. Fleet rollout logic
// (abort a channel's rollout when too many devices fail their trial) hooks in here.
import type { DeviceReport } from '../format/protocol.js';
import type { CounterStore, DeviceRecord, DeviceStore, KbStore } from './store.js';
import { onDeviceReport } from './rollout.js';

export async function handleDeviceReport(store: DeviceStore & CounterStore & Pick<KbStore, 'tx'>, device: DeviceRecord, report: DeviceReport): Promise<void> {
  await store.saveReport(device.id, report, Date.now());
  const prev = device.last_report?.trial;
  const t = report.trial;
  // log a trial outcome once, not on every sync that repeats it
  if (t && (!prev || prev.version !== t.version || prev.result !== t.result)) {
    await store.logEvent('device_trial', { device: device.id, channel: device.channel, ...t });
  }
  // fleet rollout (kb/rollout.ts): abort the channel's rollout when too many trials failed
  await onDeviceReport(store, device, report);
}
