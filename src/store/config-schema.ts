// The JSON Schema of an edge home's config.json: the single source of truth for which keys exist
// and which values they take. Compiled ahead of time (scripts/gen-config-validator.ts ->
// config-validator.gen.ts) so that checking the config on every command needs no ajv at run time.
// Every section is optional in the file (loadConfig fills defaults: DEFAULT_CONFIG in home.ts);
// unknown keys are refused, so a typo ("upload.compres") is reported instead of ignored.
const positive = { type: 'number', exclusiveMinimum: 0 } as const;

export const CONFIG_SCHEMA = {
  $id: 'sedna-ll/config@1',
  type: 'object',
  required: ['device_id'],
  additionalProperties: false,
  properties: {
    device_id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', description: 'this device (never changes after init)' },
    created_at: { type: 'string', description: 'when init created the home (ISO-8601)' },
    kb: {
      type: 'object',
      additionalProperties: false,
      required: ['public_key'],
      properties: {
        url: { type: 'string', pattern: '^https?://[^\\s]+$', description: 'KB address (http:// or https://); absent: offline bundles only' },
        public_key: { type: 'string', pattern: '^-----BEGIN PUBLIC KEY-----', description: 'PEM of the KB ed25519 public key' },
        ca_file: { type: 'string', minLength: 1, description: 'PEM file of a private CA for an https KB' },
        presigned_blobs: {
          type: 'boolean',
          description: 'download models from the object-store URL the KB presigns (GET /v1/blobs/:sha/url) instead of through the KB; falls back to the KB when it does not offer them',
        },
      },
    },
    outbox: {
      type: 'object',
      additionalProperties: false,
      properties: { max_mb: { type: 'number', minimum: 0, description: 'outbox disk quota in MiB (0: unlimited)' } },
    },
    upload: {
      type: 'object',
      additionalProperties: false,
      properties: {
        payload: { enum: ['raw', 'none'], description: 'raw: payload bytes leave the device; none: metadata only' },
        per_task: { type: 'object', additionalProperties: { enum: ['raw', 'none'] }, description: 'payload per task id' },
        retention: { enum: ['keep', 'delete'], description: 'keep uploaded samples locally, or delete them once acked' },
        compress: { enum: ['auto', 'gzip', 'none'], description: 'push body encoding (sync --compress overrides)' },
      },
    },
    images: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_pixels: { type: 'integer', minimum: 1, description: 'image inputs declaring more pixels (width x height, read from the header) are refused before decoding' },
        resize: { type: 'boolean', description: 'resize images whose size differs from the model\'s declared input (bilinear); false: refuse them' },
      },
    },
    rollout: {
      type: 'object',
      additionalProperties: false,
      properties: {
        activate: { enum: ['auto', 'manual'], description: 'activate pulled versions after verification, or wait for "model activate"' },
        trial_inferences: { type: 'integer', minimum: 0, description: 'inferences on trial before a version is committed' },
        trial_rate_factor: { ...positive, description: 'roll back when the unseen+hard rate exceeds the previous version\'s by this factor' },
        canary_tolerance: { type: 'number', minimum: 0, description: 'max abs difference of canary outputs' },
        max_latency_ms: { ...positive, description: 'max mean canary latency per sample' },
        keep_local_tasks: { type: 'boolean', description: 'keep tasks added with "task add" when a pulled KB version lacks them' },
      },
    },
  },
} as const;
