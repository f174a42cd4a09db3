// SQLite schema of the embedded KB backend (part of SqliteKbStore; no other module holds SQL).
// Migrations are applied in order and tracked with PRAGMA user_version: append new ones at the
// end, never edit a shipped one.
export const KB_MIGRATIONS: string[] = [
  // 1: devices, samples, tasks, versions, channels, counters, settings, events
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,                   -- admin_token_hash, created_at, ...
    value TEXT NOT NULL
  );

  CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,      -- sha256 hex of the bearer token
    channel        TEXT NOT NULL DEFAULT 'stable',
    created_at     INTEGER NOT NULL,          -- ms since epoch
    revoked_at     INTEGER,
    last_seen      INTEGER,
    active_version INTEGER,
    last_report    TEXT                       -- JSON DeviceReport
  );

  CREATE TABLE samples (
    seq           INTEGER PRIMARY KEY,        -- insertion order; pagination cursor
    id            TEXT NOT NULL UNIQUE,       -- client-made sample id: the idempotent upsert key
    device_id     TEXT,                       -- owner; NULL for imported training data
    source        TEXT NOT NULL,              -- edge | import
    task          TEXT NOT NULL,              -- task the edge allocated the sample to
    attrs         TEXT NOT NULL,              -- JSON, normalised
    payload_kind  TEXT NOT NULL,              -- f32 (float32 LE of x) | png | jpeg | npy | none
    payload       BLOB,                       -- inline payload (NULL: none, or in blobs/)
    payload_blob  INTEGER NOT NULL DEFAULT 0, -- 1: bytes are the blob payload_sha
    payload_sha   TEXT NOT NULL,
    payload_bytes INTEGER NOT NULL,
    pred_label    TEXT,
    scores        TEXT NOT NULL,              -- JSON array
    hard          INTEGER NOT NULL,
    hard_reasons  TEXT NOT NULL,              -- JSON array
    unseen        INTEGER NOT NULL,
    unseen_reason TEXT,
    kb_version    INTEGER,
    created_at    INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    label         TEXT,
    label_source  TEXT,                       -- edge | import | admin | file name
    labelled_at   INTEGER,
    assigned_task TEXT,                       -- learner's task definition
    split         TEXT,                       -- train | heldout (learner)
    used_in_round INTEGER
  );
  CREATE INDEX samples_device ON samples (device_id, seq);

  CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    model_sha     TEXT NOT NULL,
    fallback      INTEGER NOT NULL DEFAULT 0,
    retired       INTEGER NOT NULL DEFAULT 0,
    updated_round INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    record        TEXT NOT NULL               -- JSON TaskRecord (attrs, model io, labels, metrics, ...)
  );

  CREATE TABLE versions (
    n          INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    parent     INTEGER,
    index_sha  TEXT NOT NULL,                 -- sha256 of versions/<n>/index.json
    channel    TEXT,                          -- channel it was first published to
    tasks      INTEGER NOT NULL,
    notes      TEXT
  );

  CREATE TABLE version_blobs (                -- blobs a version references: the servable ones
    sha     TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (sha, version)
  ) WITHOUT ROWID;

  CREATE TABLE channels (
    name             TEXT PRIMARY KEY,
    version          INTEGER,
    previous_version INTEGER,
    updated_at       INTEGER NOT NULL,
    config           TEXT NOT NULL DEFAULT '{}',  -- rollout settings (JSON)
    state            TEXT NOT NULL DEFAULT '{}'   -- rollout state (JSON)
  );

  CREATE TABLE counters (
    name  TEXT PRIMARY KEY,                   -- samples_new, labelled_new, ...
    value INTEGER NOT NULL
  );

  CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  `,
  // 2 (images): the preprocessing an edge's model used for an image sample (JSON; NULL for
  // vectors and imports without it), stored and exported with the original bytes
  `
  ALTER TABLE samples ADD COLUMN preprocessing TEXT;
  `,
];
