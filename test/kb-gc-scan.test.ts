// `kb gc` walks the samples' references in ONE consistent pass (SampleStore.scanSamples without
// payloads), on both backends: it neither waits for nor holds up pushes in flight (PostgreSQL's
// ascending listSamples takes the exclusive commit-watermark lock per page), and it never reads
// payload bytes (a sample whose payload blob is gone does not stop it). Real stores.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { collectGarbage } from '../src/kb/gc.js';
import { INLINE_PAYLOAD_MAX } from '../src/kb/sqlite-store.js';
import { KB_BACKENDS, stopBackends, waitsOnLock } from './helpers/kb-backends.js';
import { kbSample } from './helpers/kb-sample.js';

after(stopBackends);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const sample = (id: string, payload: Buffer) => kbSample(id, payload);

for (const backend of KB_BACKENDS) {
  describe(`kb gc sample pass: ${backend.name}`, { skip: backend.skip }, () => {
    test('references of every sample in one pass; a push in flight neither waits nor is waited for; payloads are not read', { timeout: 120_000 }, async () => {
      const kb = await backend.open();
      const other = await kb.reopen();
      let release = () => {};
      try {
        const { store } = kb;
        const big = Array.from({ length: 5 }, () => randomBytes(INLINE_PAYLOAD_MAX + 100));
        await store.putSamples('dev-1', big.map((b, i) => sample(`big-${i}`, b)));
        await store.putSamples('dev-1', Array.from({ length: 30 }, (_, i) => sample(`small-${i}`, randomBytes(64))));
        // a payload blob that went missing: gc has no reason to read it
        await store.blobs.delete(sha(big[0]));

        // a push that holds its transaction open while gc runs
        const held = new Promise<void>((r) => (release = r));
        let inserted!: () => void;
        const pushed = new Promise<void>((r) => (inserted = r));
        const push = other.tx(async (t) => {
          await t.putSamples('dev-2', [sample('in-flight', randomBytes(INLINE_PAYLOAD_MAX + 100))]);
          inserted();
          await held;
        });
        await pushed;
        const gc = collectGarbage(store, { dryRun: true, graceMinutes: 0 });
        // gc must finish while the push is open: if it waited for the push, release it after
        // the test failed (a waiting gc never ends the race otherwise)
        let waited = false;
        let done = false;
        void gc.finally(() => (done = true)).catch(() => {});
        const blocked = kb.url ? waitsOnLock(kb.url, () => done).then(() => (done ? gc : ((waited = true), release(), gc))) : gc;
        const r = await Promise.race([gc, blocked]);
        release();
        await push;
        await blocked; // the lock watcher has stopped
        assert.equal(waited, false, 'kb gc waited for a push in flight');
        // the 4 payload blobs still there are referenced; the in-flight push's blob is not yet
        // (its row is not committed) and shows as an orphan of a 0-minute grace
        assert.equal(r.referenced, 4);
        assert.equal(r.blobs, 5);
      } finally {
        release(); // a failed assertion must not leave the push open
        await other.close();
        await kb.cleanup();
      }
    });
  });
}

