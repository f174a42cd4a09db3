// runInTurn (src/onnx/ort.ts): serve's model run without onnxruntime-node's setImmediate turn.
// The outputs are session.run's; no event-loop phase runs before the caller resumes (a
// setImmediate queued before the call has not fired), a bad feed still rejects, and the global
// setImmediate is the real one again afterwards (also after a throw); the handle the stand-in
// returns supports unref/ref/hasRef, clearImmediate and dispose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from './helpers/cli.js';
import { writeRandomMlp } from './helpers/models.js';
import { loadOrt, openSession, runInTurn } from '../src/onnx/ort.js';

test('runInTurn: same outputs as session.run, no event-loop turn before the caller resumes, setImmediate restored', async () => {
  const t = tempDir('sedna-ll-run-in-turn-');
  try {
    const ort = await loadOrt();
    const session = await openSession(writeRandomMlp(t.dir, 'mlp', [4, 6, 3], 1), 'mlp');
    const x = Float32Array.from([0.1, 0.5, -0.2, 0.9, 1, 0, 0.3, 0.3]);
    const feeds = () => ({ [session.inputNames[0]]: new ort.Tensor('float32', x, [2, 4]) });
    const realImmediate = globalThis.setImmediate;

    let turned = false;
    setImmediate(() => (turned = true));
    const now = await runInTurn(session, feeds());
    assert.equal(turned, false, 'an event-loop turn ran before runInTurn resumed its caller');
    assert.equal(globalThis.setImmediate, realImmediate);

    const viaRun = await session.run(feeds());
    assert.equal(turned, true, 'session.run itself does take a turn');
    const name = session.outputNames[0];
    assert.deepEqual(now[name].dims, [2, 3]);
    assert.deepEqual(Array.from(now[name].data as Float32Array), Array.from(viaRun[name].data as Float32Array));
    // naming the outputs to fetch works the same
    const fetched = await runInTurn(session, feeds(), [name]);
    assert.deepEqual(Array.from(fetched[name].data as Float32Array), Array.from(viaRun[name].data as Float32Array));

    // a feed onnxruntime refuses (wrong width) rejects, and the real setImmediate is back
    await assert.rejects(runInTurn(session, { [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(5), [1, 5]) }));
    assert.equal(globalThis.setImmediate, realImmediate);
    // a missing input is refused by onnxruntime-common before the run: also restored
    await assert.rejects(runInTurn(session, {}));
    assert.equal(globalThis.setImmediate, realImmediate);

    // the handle the stand-in hands to onnxruntime-node's setImmediate call can be used as one:
    // ref/unref/hasRef, clearImmediate and dispose neither throw nor keep the loop alive
    let handle: unknown = 'not called';
    const spy = (s: typeof setImmediate) =>
      ((fn: (...a: unknown[]) => void, ...args: unknown[]) => {
        const h = s(fn, ...args);
        handle = h;
        return h;
      }) as unknown as typeof setImmediate;
    // runInTurn swaps globalThis.setImmediate during session.run: capture what the stand-in returns
    const runThrough = (run: () => Promise<unknown>) => {
      const orig = Object.getOwnPropertyDescriptor(globalThis, 'setImmediate')!;
      let swapped: typeof setImmediate | undefined;
      Object.defineProperty(globalThis, 'setImmediate', {
        configurable: true,
        get: () => swapped ?? orig.value,
        set: (v: typeof setImmediate) => (swapped = v === orig.value ? undefined : spy(v)),
      });
      try {
        return run();
      } finally {
        Object.defineProperty(globalThis, 'setImmediate', orig);
      }
    };
    await runThrough(() => runInTurn(session, feeds()));
    assert.equal(globalThis.setImmediate, realImmediate);
    const h = handle as NodeJS.Immediate;
    assert.ok(h && typeof h === 'object', `the stand-in returned ${String(handle)}, not a handle`);
    assert.equal(h.unref(), h);
    assert.equal(h.ref(), h);
    assert.equal(h.hasRef(), false, 'a spent handle does not keep the process alive');
    clearImmediate(h);
    clearImmediate(h);
    h[Symbol.dispose]?.();
    // and the real setImmediate still runs its callbacks afterwards
    await new Promise<void>((r) => setImmediate(r));
    await session.release();
  } finally {
    t.cleanup();
  }
});
