// The one retry policy of sync: every request of the HTTP client and every blob download retries
// a retryable failure (network error, timeout, 5xx, 429) after a full-jitter exponential backoff,
// up to `retries` times and never past the run's deadline (--max-time). A Retry-After hint is
// honoured (up to a minute). An attempt that made progress (a download that received bytes)
// does not count: a flaky link that still moves data finishes.
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  /** attempts after the first one for a retryable failure */
  retries: number;
  /** first backoff step; step k waits random(0, min(cap, base * 2^k)) (full jitter) */
  backoffBaseMs: number;
  backoffCapMs: number;
  /** absolute ms (Date.now() scale) after which no new attempt starts; Infinity: none */
  deadline: number;
  /** called before each retry sleep (progress / debug) */
  onRetry?: (info: { attempt: number; waitMs: number; reason: string }) => void;
}

/** The wait before retry number failures+1 (failures >= 0): full jitter, or the server's hint. */
export function backoffMs(p: Pick<RetryPolicy, 'backoffBaseMs' | 'backoffCapMs'>, failures: number, hintMs: number | null, random: () => number = Math.random): number {
  const step = Math.min(p.backoffCapMs, p.backoffBaseMs * 2 ** failures);
  const wait = random() * step;
  return hintMs === null ? wait : Math.min(Math.max(wait, hintMs), 60_000);
}

export type GiveUp = (kind: 'unreachable' | 'deadline', message: string) => Error;

/**
 * The retry state of one logical operation. The caller loops: attempt, and on a retryable
 * failure `await retrier.failed(reason)`, which waits out the backoff or throws (attempts used
 * up: 'unreachable' with the message of `unreachable`; the wait would pass the deadline).
 */
export class Retrier {
  private failures = 0;

  constructor(
    private readonly p: RetryPolicy,
    private readonly unreachable: (attempts: number, reason: string) => string,
    private readonly giveUp: GiveUp,
  ) {}

  async failed(reason: string, o: { hintMs?: number | null; progressed?: boolean } = {}): Promise<void> {
    if (o.progressed) this.failures = 0;
    const n = this.failures;
    if (n >= this.p.retries) throw this.giveUp('unreachable', this.unreachable(n + 1, reason));
    const wait = backoffMs(this.p, n, o.hintMs ?? null);
    if (wait >= this.p.deadline - Date.now()) throw this.giveUp('deadline', `--max-time reached while waiting to retry (${reason})`);
    this.p.onRetry?.({ attempt: n + 1, waitMs: Math.round(wait), reason });
    this.failures++;
    await sleep(wait);
  }
}
