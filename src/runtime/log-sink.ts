// What the pipeline needs from the outbox (src/store/outbox.ts, owned by the store): one call
// that stores a batch of samples in one transaction. Declared here structurally so the runtime
// depends on the contract, not on the store's internals.
import type { PayloadKind } from './sample.js';

export interface LogRecord {
  /** a pre-allocated sample id (UUIDv7); NOT the input record's own id (that one is not stored) */
  id?: string;
  task: string;
  attrs: Record<string, string>;
  payloadKind: PayloadKind;
  payload: Buffer;
  predLabel: string | null;
  scores: number[];
  hard: boolean;
  hardReasons: string[];
  unseen: boolean;
  unseenReason: string | null;
  /** 0..1, the eviction value (higher is kept longer) */
  hardness: number;
  kbVersion: string | null;
}

export interface LogSink {
  /** one transaction; per record the sample id (UUIDv7) and whether it was already stored */
  logBatch(recs: LogRecord[]): { sampleId: string; duplicate: boolean; evicted?: boolean }[];
}
