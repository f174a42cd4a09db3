// PostgreSQL schema of the shared KB backend (part of PgKbStore; no other module holds its SQL).
// Migrations are applied in order, each in its own transaction, under an advisory lock (replicas
// starting together migrate once), and tracked in kb_schema: append new ones, never edit one.
export const PG_MIGRATIONS: string[] = [
  // 1: devices, samples, tasks, versions (index + signature in the row), channels, sharded
  // counters, settings, events
  `
  CREATE TABLE meta (
    key   text PRIMARY KEY,                   -- admin_token_hash, signing_public_key, ...
    value text NOT NULL
  );

  CREATE TABLE devices (
    id             text PRIMARY KEY,
    token_hash     text NOT NULL UNIQUE,      -- sha256 hex of the bearer token
    channel        text NOT NULL DEFAULT 'stable',
    created_at     bigint NOT NULL,           -- ms since epoch
    revoked_at     bigint,
    last_seen      bigint,
    active_version integer,
    last_report    text                       -- JSON DeviceReport
  );
  CREATE INDEX devices_channel ON devices (channel);

  CREATE TABLE samples (
    seq           bigserial PRIMARY KEY,      -- insertion order; cursor (see PgKbStore.safeSeq)
    id            text NOT NULL UNIQUE,       -- client-made sample id: the idempotent upsert key
    device_id     text,                       -- owner; NULL for imported training data
    source        text NOT NULL,
    task          text NOT NULL,
    attrs         text NOT NULL,              -- JSON, normalised
    payload_kind  text NOT NULL,
    payload       bytea,                      -- inline payload (NULL: none, or in the blob store)
    payload_blob  boolean NOT NULL DEFAULT false,
    payload_sha   text NOT NULL,
    payload_bytes integer NOT NULL,
    pred_label    text,
    scores        text NOT NULL,
    hard          boolean NOT NULL,
    hard_reasons  text NOT NULL,
    unseen        boolean NOT NULL,
    unseen_reason text,
    kb_version    integer,
    created_at    bigint NOT NULL,
    received_at   bigint NOT NULL,
    label         text,
    label_source  text,
    labelled_at   bigint,
    assigned_task text,
    split         text,
    used_in_round integer
  );
  CREATE INDEX samples_device ON samples (device_id, seq);
  CREATE INDEX samples_task ON samples (task, seq);

  CREATE TABLE tasks (
    id            text PRIMARY KEY,
    model_sha     text NOT NULL,
    fallback      boolean NOT NULL DEFAULT false,
    retired       boolean NOT NULL DEFAULT false,
    updated_round integer NOT NULL DEFAULT 0,
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL,
    record        text NOT NULL               -- JSON TaskRecord
  );

  CREATE TABLE versions (
    n           integer PRIMARY KEY,
    created_at  bigint NOT NULL,
    parent      integer,
    index_sha   text NOT NULL,
    channel     text,
    tasks       integer NOT NULL,
    notes       text,
    index_bytes bytea NOT NULL,               -- the signed index.json, byte-exact
    sig         text NOT NULL                 -- its signature
  );

  CREATE TABLE version_blobs (
    sha     text NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (sha, version)
  );

  CREATE TABLE channels (
    name             text PRIMARY KEY,
    version          integer,
    previous_version integer,
    updated_at       bigint NOT NULL,
    config           text NOT NULL DEFAULT '{}',
    state            text NOT NULL DEFAULT '{}'
  );

  -- a counter is the sum of its shards: concurrent pushes add to different rows instead of
  -- queueing on one (names "total.*" are the maintained totals of stats(), not counters())
  CREATE TABLE counter_shards (
    name  text NOT NULL,
    shard integer NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (name, shard)
  );

  CREATE TABLE events (
    id     bigserial PRIMARY KEY,
    ts     bigint NOT NULL,
    kind   text NOT NULL,
    detail text NOT NULL DEFAULT '{}'
  );
  CREATE INDEX events_kind ON events (kind, id);
  `,
  // 2 (images): the preprocessing an edge's model used for an image sample (JSON text; NULL for
  // vectors and imports without it), as SQLite's migration 2
  `
  ALTER TABLE samples ADD COLUMN preprocessing text;
  `,
];
