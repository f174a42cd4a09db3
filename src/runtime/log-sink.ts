// What the pipeline needs from the outbox (src/store/outbox.ts, owned by the store): one call
// that stores a batch of samples in one transaction. The record type is the store's own
// (imported as a type only: no runtime dependency on the store's module), so the two cannot
// drift apart; the sink is an interface so the pipeline depends on the contract, not the class.
import type { LogRecord } from '../store/outbox.js';

export type { LogRecord };

export interface LogSink {
  /** one transaction; per record the sample id (UUIDv7) and whether it was already stored */
  logBatch(recs: LogRecord[]): { sampleId: string; duplicate: boolean; evicted?: boolean }[];
}
