// scripts/ceph/start-rgw.sh + stop-rgw.sh: a real single-node Ceph cluster with a RADOS gateway
// starts, answers S3 on loopback, refuses anonymous writes, and stop removes daemons and dir.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rgwMissing, startRgw, type TestRgw } from './helpers/rgw.js';

const missing = rgwMissing();

/**
 * Is pid a live process? A zombie is not: the daemons daemonize, so their parent after exit is
 * PID 1, and where PID 1 does not reap (a container's shell) a killed daemon stays <defunct>,
 * which kill(pid, 0) still finds.
 */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('start-rgw.sh', { skip: missing ?? false }, () => {
  let rgw: TestRgw;
  before(async () => {
    rgw = await startRgw();
  });
  after(async () => {
    await rgw?.stop();
  });

  it('prints a loopback endpoint and keys; the gateway refuses an anonymous bucket create', async () => {
    assert.match(rgw.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(rgw.accessKeyId, /^[0-9A-F]{20}$/);
    assert.match(rgw.secretAccessKey, /^[0-9a-f]{60}$/);
    const res = await fetch(`${rgw.endpoint}/anonymous-bucket`, { method: 'PUT' });
    assert.equal(res.status, 403);
    assert.match(await res.text(), /AccessDenied/);
  });

  it('stop kills the daemons it started and removes the dir', async () => {
    const pids = ['mon.a', 'osd.0', 'client.rgw.a'].map((n) => Number(readFileSync(join(rgw.dir, 'run', `${n}.pid`), 'utf8').trim()));
    await rgw.stop();
    assert.equal(existsSync(rgw.dir), false);
    for (const pid of pids) assert.equal(running(pid), false, `pid ${pid} still alive`);
  });
});
