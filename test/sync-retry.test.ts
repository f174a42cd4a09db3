// sync/retry.ts in process: the backoff schedule (full jitter, cap, Retry-After), give-up after
// `retries` failures, progress resetting the count, and the deadline refusing a wait past it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Retrier, backoffMs, type RetryPolicy } from '../src/sync/retry.js';

class GaveUp extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}
const giveUp = (kind: 'unreachable' | 'deadline', m: string) => new GaveUp(kind, m);
const policy = (o: Partial<RetryPolicy> = {}): RetryPolicy => ({ retries: 3, backoffBaseMs: 1, backoffCapMs: 4, deadline: Infinity, ...o });

describe('sync/retry', () => {
  it('backoffMs: full jitter under min(cap, base * 2^k); a Retry-After hint wins, capped at a minute', () => {
    const p = { backoffBaseMs: 250, backoffCapMs: 8000 };
    assert.equal(backoffMs(p, 0, null, () => 0.999999), 250 * 0.999999);
    assert.equal(backoffMs(p, 3, null, () => 0.5), 1000);
    assert.equal(backoffMs(p, 10, null, () => 1), 8000, 'capped');
    assert.equal(backoffMs(p, 0, null, () => 0), 0);
    assert.equal(backoffMs(p, 0, 5000, () => 0.5), 5000, 'the hint when longer');
    assert.equal(backoffMs(p, 5, 10, () => 0.5), 4000, 'the jitter when longer than the hint');
    assert.equal(backoffMs(p, 0, 3_600_000, () => 0.5), 60_000);
  });

  it('gives up after `retries` failures with the caller message and the attempt count', async () => {
    const seen: number[] = [];
    const r = new Retrier(policy({ onRetry: (i) => seen.push(i.attempt) }), (n, why) => `unreachable after ${n}: ${why}`, giveUp);
    for (let i = 0; i < 3; i++) await r.failed('HTTP 503');
    await assert.rejects(r.failed('HTTP 503'), (e: unknown) => e instanceof GaveUp && e.kind === 'unreachable' && e.message === 'unreachable after 4: HTTP 503');
    assert.deepEqual(seen, [1, 2, 3]);
  });

  it('an attempt that made progress does not count', async () => {
    const r = new Retrier(policy({ retries: 1 }), (n) => `gave up after ${n}`, giveUp);
    await r.failed('cut');
    for (let i = 0; i < 5; i++) await r.failed('cut', { progressed: true });
    await assert.rejects(r.failed('cut'), /gave up after 2/);
  });

  it('a wait that would pass the deadline ends the operation at once', async () => {
    const r = new Retrier(policy({ backoffBaseMs: 10_000, backoffCapMs: 10_000, deadline: Date.now() + 1 }), () => 'x', giveUp);
    await assert.rejects(r.failed('HTTP 500', { hintMs: 5000 }), (e: unknown) => e instanceof GaveUp && e.kind === 'deadline' && /--max-time reached while waiting to retry \(HTTP 500\)/.test(e.message));
  });
});
