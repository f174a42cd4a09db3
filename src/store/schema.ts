// Edge SQLite schema. Migrations are applied in order and tracked with PRAGMA user_version:
// append new ones at the end, never edit a shipped one.
export const MIGRATIONS: string[] = [
  // 1: outbox, filter rate counters, installed KB versions, key/value state, event log
  `
  CREATE TABLE samples (
    id            TEXT PRIMARY KEY,           -- client-made sample id (UUIDv7), the sync upsert key
    payload_sha   TEXT NOT NULL,              -- sha256 of the payload bytes
    task          TEXT NOT NULL,
    attrs         TEXT NOT NULL DEFAULT '{}', -- JSON, normalised
    payload_kind  TEXT NOT NULL,              -- f32 (float32 LE of x) | png | jpeg | npy
    payload       BLOB,                       -- inline payload; NULL when stored under blobs/
    payload_bytes INTEGER NOT NULL,
    pred_label    TEXT,
    scores        TEXT,                       -- JSON array
    hard          INTEGER NOT NULL DEFAULT 0,
    hard_reasons  TEXT NOT NULL DEFAULT '[]',
    unseen        INTEGER NOT NULL DEFAULT 0,
    unseen_reason TEXT,
    hardness      REAL NOT NULL DEFAULT 0,    -- 0..1, eviction value (higher is kept longer)
    kb_version    INTEGER,
    created_at    INTEGER NOT NULL,           -- ms since epoch
    state         TEXT NOT NULL DEFAULT 'pending', -- pending | uploaded
    uploaded_at   INTEGER,
    label         TEXT,
    label_state   TEXT,                       -- NULL | pending | uploaded
    labelled_at   INTEGER,
    dup_count     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (task, payload_sha)
  );
  CREATE INDEX samples_state_time ON samples (state, created_at);
  CREATE INDEX samples_label_state ON samples (label_state) WHERE label_state IS NOT NULL;

  CREATE TABLE filter_counts (
    filter TEXT NOT NULL,                     -- filter type
    bucket TEXT NOT NULL,                     -- e.g. m:29140012 / h:485666 / d:20236
    n      INTEGER NOT NULL,
    PRIMARY KEY (filter, bucket)
  );

  -- Installed KB versions. id is "<n>" for a version signed by the KB (n = index.version, so
  -- ids sort with the KB's numbering) and "local-<n>" for one made by "task add" on this edge;
  -- the two namespaces never collide. Files live under kb/<id>/.
  CREATE TABLE kb_versions (
    id           TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL,            -- index.version
    origin       TEXT NOT NULL,               -- local | kb | bundle
    state        TEXT NOT NULL,               -- staged | trial | active | previous | failed | retired
    reason       TEXT,
    index_sha    TEXT NOT NULL,
    installed_at INTEGER NOT NULL,
    activated_at INTEGER,
    trial        TEXT                         -- JSON: trial counters and results
  );

  CREATE TABLE kv (
    key   TEXT PRIMARY KEY,                   -- active_version, previous_version, counters ...
    value TEXT NOT NULL
  );

  CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  `,
  // 2 (outbox): value-aware eviction walks samples_evict in eviction order (fully uploaded
  // first, then unlabelled before labelled, lowest hardness, oldest); blob refcounts use
  // samples_blob_sha (only rows whose payload lives under blobs/ are indexed).
  `
  CREATE INDEX samples_evict ON samples ((state = 'pending' OR label_state IS 'pending'), (label IS NOT NULL), hardness, created_at);
  CREATE INDEX samples_blob_sha ON samples (payload_sha) WHERE payload IS NULL;
  `,
  // 3 (sync): samples.state may also be 'rejected': the KB refused the sample for good (its id
  // belongs to another device, it failed the KB's checks); reject_reason holds the KB's reason.
  // Never sent again (store/rejected.ts); evicted like uploaded ones (not 'pending').
  `
  ALTER TABLE samples ADD COLUMN reject_reason TEXT;
  `,
  // 4 (sync push): inline payloads of new samples live in sample_payloads instead of their
  // samples row. Marking a sample uploaded rewrites its whole row; with the ~3 KB payload inline
  // that was a 4 KB page per sample (200 MB of WAL per 50k x 3 KB); now a ~300-byte row.
  // Marking 50k: 1.1-1.4 s -> 0.65-0.85 s; the rest is the two indexes on state (samples_evict
  // by hardness: scattered pages), ~0.15 s without them. samples.payload: NULL = in blobs/<sha> (unchanged), and for
  // payload_ext = 1 an empty blob (the bytes are in sample_payloads under the same id); rows
  // written before this migration keep their payload inline (payload_ext = 0). Read it with
  // PAYLOAD_SQL (store/sample-row.ts). The trigger removes the payload with its sample, whoever
  // deletes it (eviction, retention=delete).
  `
  ALTER TABLE samples ADD COLUMN payload_ext INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE sample_payloads (
    id      TEXT PRIMARY KEY,                 -- samples.id
    payload BLOB NOT NULL
  );
  CREATE TRIGGER samples_payload_gone AFTER DELETE ON samples WHEN old.payload_ext = 1
  BEGIN
    DELETE FROM sample_payloads WHERE id = old.id;
  END;
  `,
  // 5 (images): the preprocessing the model used for an image sample (JSON of the index's
  // preprocessing: size, channels, scale, normalisation, layout), logged with its original bytes
  // and uploaded with it, so the KB knows what the edge fed the model. NULL for vectors.
  `
  ALTER TABLE samples ADD COLUMN preprocessing TEXT;
  `,
  // 6 (sync push): acks move fewer index entries. Marking a sample uploaded moved its entry in
  // samples_state_time (state, created_at) from 'pending' to 'uploaded' and its entry in
  // samples_evict from the needs-upload half to the other, both a delete and an insert.
  // - samples_pending_time holds pending rows only (the push reader and pendingCounts ask for
  //   state = 'pending', same plans): marking only deletes the entry. Uploaded rows have no
  //   index on state any more: `samples ls|export --state uploaded` and the GROUP BY state
  //   counts read the table (the counts sum row bytes from it anyway).
  // - eviction order (outbox-eviction.ts) is served by two indexes: samples_evict_done, the
  //   rows that need no upload (marking inserts the entry), and samples_evict_value over all
  //   rows, which marking does not touch (it indexes no upload state). Eviction takes the done
  //   rows first; once none is left every row needs upload, so walking samples_evict_value is
  //   the rest of the old order (ties by rowid in both, as before).
  // Marking 50k x 3 KB acks (bench/mark-acks.ts, CPU medians of 7, load ~3): 351 ms -> 238 ms.
  `
  DROP INDEX samples_state_time;
  CREATE INDEX samples_pending_time ON samples (created_at) WHERE state = 'pending';
  DROP INDEX samples_evict;
  CREATE INDEX samples_evict_value ON samples ((label IS NOT NULL), hardness, created_at);
  CREATE INDEX samples_evict_done ON samples ((label IS NOT NULL), hardness, created_at) WHERE NOT (state = 'pending' OR label_state IS 'pending');
  `,
  // 7 (samples export|ls): the outbox in its reading order, oldest first with ties by id, over
  // all rows. `samples export` pages with the keyset (created_at, id) > (?, ?): without an index
  // on it every 500-row page scanned and sorted the whole table (300k rows: ~100 ms a page,
  // quadratic in the outbox; --state uploaded read the table since migration 6). Now a page
  // seeks and reads its own rows; the state and task filters are checked on the rows walked.
  // No upload state in it: marking an ack (UPDATE of state, uploaded_at) leaves it alone; a new
  // row appends at its end (created_at is the logging time). ~50 bytes a row.
  // samples_rejected: the rejected rows (store/rejected.ts), counted by every `sync` and by
  // `status`; since migration 6 that count read the whole table. A push's ack neither enters
  // nor leaves it (pending -> uploaded), only marking a sample rejected adds an entry.
  `
  CREATE INDEX samples_time_id ON samples (created_at, id);
  CREATE INDEX samples_rejected ON samples (created_at) WHERE state = 'rejected';
  `,
];
