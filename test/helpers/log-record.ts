// One sample as the edge's runtime logs it into the outbox (LogRecord): an f32 sample, hard by
// margin, with a neutral value in every field, so a test names only the fields it is about.
import type { LogRecord } from '../../src/store/outbox.js';

export function logRecord(payload: Buffer, over: Partial<LogRecord> = {}): LogRecord {
  return {
    task: 'global',
    attrs: { site: 'a' },
    payloadKind: 'f32',
    payload,
    predLabel: '1',
    scores: [0.2, 0.8],
    hard: true,
    hardReasons: ['margin'],
    unseen: false,
    unseenReason: null,
    hardness: 0.5,
    kbVersion: null,
    ...over,
  };
}
