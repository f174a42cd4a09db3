// The machine output of every command, in one place: the JSON Schema of each command's --json
// run record (one compact JSON line per run, src/commands/output.ts writes it). Scripts and cron
// jobs can rely on what is listed here; test/cli-json.test.ts runs every --json command and
// validates its line against these schemas, and checks README's JSON examples against them.
//
// Naming rule: snake_case keys, ISO-8601 UTC times (fields named *_at, *time, last_seen), sizes in
// bytes as numbers (*_bytes), each fact once (the edge device id is the envelope's `device`).
// Not loaded at run time (only tests and documentation read it).

type Schema = Record<string, unknown>;

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;
const iso = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' } as const;
const nul = (s: Schema): Schema => ({ anyOf: [s, { type: 'null' }] });
const arr = (items: Schema = {}): Schema => ({ type: 'array', items });
const obj = (properties: Record<string, Schema> = {}, required: string[] = Object.keys(properties)): Schema => ({ type: 'object', properties, required });
const strs = arr(str);

/** The envelope every record has. */
export const ENVELOPE = {
  time: iso,
  device: nul(str),
  command: str,
  exit: { type: 'integer', minimum: 0, maximum: 6 },
  error: obj({ code: { enum: ['failure', 'usage', 'offline', 'partial', 'verify', 'locked'] }, message: str }),
} as const;

/** fields of one command's record: [properties, required] */
type Fields = [Record<string, Schema>, string[]?];

const versionRow = obj({ id: str, origin: str, state: str, installed_at: iso, activated_at: nul(iso) });
const activation = obj({ version: str, result: { enum: ['pass', 'trial', 'fail', 'ok', 'noop'] }, active_version: nul(str), previous_version: nul(str), reason: str, checks: {} }, ['version', 'result', 'active_version', 'previous_version']);
const kbDevice = obj({ id: str, channel: str, created_at: iso, revoked_at: nul(iso), last_seen: nul(iso), active_version: nul(int), last_report: {} });
const channel = obj({ name: str, version: nul(int), previous_version: nul(int) }, ['name', 'version', 'previous_version']);
const kbSample = obj({ id: str, device_id: nul(str), task: nul(str), payload_bytes: int, received_at: iso, label: nul(str) }, ['id', 'device_id', 'payload_bytes', 'received_at', 'label']);
const kbTask = obj({ id: str, attrs: { type: 'object' }, model_sha: str, labels: strs, fallback: bool, created_at: iso, updated_at: iso }, ['id', 'attrs', 'model_sha', 'labels', 'fallback']);
const syncTrial = obj({ version: int, result: { enum: ['pass', 'trial', 'fail', 'noop'] }, reason: str }, ['version', 'result']);

const FIELDS: Record<string, Fields> = {
  init: [{ home: str, created: bool, updated: strs, outbox_max_bytes: int, kb_url: nul(str), token: bool }],
  'task add': [
    { task: str, version: str, previous_version: nul(str), replaced: bool, unchanged: bool, model: obj({ sha256: str, size: int, labels: strs, output_kind: str }), labels_note: str, labels_kept: nul(bool), previous_labels: nul(strs), kept: bool },
    ['task', 'version', 'previous_version', 'replaced', 'unchanged', 'model'],
  ],
  infer: [{ inferred: int, logged: int, bad: int }],
  feedback: [{ labelled: int, unchanged: int, unknown: strs, skipped: int, errors: strs }],
  'samples ls': [{ samples: arr(obj({ id: str, task: str, created_at: iso, state: str, hard: bool, unseen: bool, hard_reasons: strs, payload_bytes: int })) }],
  'samples stats': [{ tasks: arr(obj({ task: str, samples: int, pending: int, uploaded: int, bytes: int, evicted: int })), reasons: arr(obj({ task: str, kind: str, reason: str, samples: int })) }],
  'samples export': [{ exported: int, file: nul(str) }],
  status: [
    {
      home: str,
      kb_url: nul(str),
      active_version: nul(str),
      previous_version: nul(str),
      active_error: str,
      versions: arr(versionRow),
      tasks: arr(obj({ id: str, attrs: { type: 'object' }, classes: int, model_sha256: str, fallback: bool })),
      outbox: obj({ pending: int, pending_bytes: int, uploaded: int, uploaded_bytes: int, labels_pending: int, rejected: int, deleted_uploaded: int, bytes: int, max_bytes: int, used_pct: nul(num) }),
      evictions: obj({ count: int, bytes: int, uploaded: int, pending: int, labelled: int }),
      db_bytes: int,
      trusted_keys: arr(obj({ fingerprint: str, after: nul(int), upto: nul(int) })),
      last_sync: nul(obj({ time: iso, exit: nul(int), error: str }, ['time', 'exit'])),
    },
    ['home', 'kb_url', 'active_version', 'previous_version', 'versions', 'tasks', 'outbox', 'evictions', 'db_bytes', 'trusted_keys', 'last_sync'],
  ],
  sync: [
    {
      pushed: int,
      acked: int,
      rejected: int,
      rejected_total: int,
      pending: int,
      labels_pushed: int,
      labels_pending: int,
      batches_gzip: int,
      batches_plain: int,
      push_framing: nul(str),
      pulled_version: nul(int),
      activated: bool,
      trial: syncTrial,
      warnings: strs,
      bytes_up: int,
      bytes_down: int,
      duration_ms: int,
      push_ms: int,
      pull_ms: int,
      download_ms: int,
      // prefix of every request's X-Request-Id (`<request_id>-<n>`), the KB's req_id
      request_id: { type: 'string', pattern: '^[0-9a-f]{16}$' },
    },
    ['pushed', 'acked', 'rejected', 'pending', 'labels_pushed', 'pulled_version', 'activated', 'bytes_up', 'bytes_down', 'duration_ms'],
  ],
  'model ls': [{ versions: arr(obj({ id: str, state: str, origin: str, active: bool, previous: bool, installed_at: iso, activated_at: nul(iso), tasks: arr(obj({ id: str, model_sha256: str })) })) }],
  'model install': [{ version: str, already: bool, tasks: strs, canary: int, keys_adopted: strs, activation: nul(activation) }],
  'model activate': [(activation as { properties: Record<string, Schema> }).properties, ['version', 'result', 'active_version', 'previous_version']],
  'model rollback': [{ from_version: str, to_version: str }],
  'model verify': [{ ok: bool, versions: int, models: int, problems: strs, notes: strs }],
  'model prune': [{ removed: strs, models_removed: strs, kept: strs }],
  'model export': [{ file: str, bytes: int, sha256: str, signed: bool, canary: int }],
  'config get': [{ key: str, value: {} }],
  'config set': [{ key: str, value: {}, file: str }],
  'config unset': [{ key: str, removed: bool, file: str }],
  'config validate': [{ file: str, valid: bool }],
  'config show': [{ file: str, config: obj({ device_id: str }) }],
  'kb init': [{ data: str, admin_token: str, public_key: str }],
  'kb device add': [{ id: str, channel: str, token: str, token_file: str, public_key: str }, ['id', 'channel', 'public_key']],
  'kb keys ls': [{ current: str, keys: arr(obj({ seq: int, fingerprint: str, after: nul(int), upto: nul(int), created_at: nul(iso) })) }],
  'kb keys rotate': [{ seq: int, from: str, to: str, last_version: int, signing_key: str, retired: nul(str), public_key: str, resumed: bool }],
  'kb device ls': [{ devices: arr(kbDevice) }],
  'kb device revoke': [kbDevice.properties as Record<string, Schema>, ['id', 'channel', 'revoked_at']],
  'kb device set': [kbDevice.properties as Record<string, Schema>, ['id', 'channel']],
  'kb samples ls': [{ samples: arr(kbSample) }],
  'kb samples export': [{ exported: int, file: nul(str) }],
  'kb samples import': [{ lines: int, imported: int, existing: int, skipped: int }, ['lines', 'imported', 'existing', 'skipped']],
  'kb label import': [{ lines: int, stored: int, newly_labelled: int, unknown: strs, skipped: int }, ['lines', 'stored', 'newly_labelled', 'unknown', 'skipped']],
  'kb task add': [kbTask.properties as Record<string, Schema>, ['id', 'model_sha', 'labels', 'fallback']],
  'kb tasks': [{ tasks: arr(kbTask) }],
  'kb publish': [{ version: int, parent: nul(int), channel: str, index_sha: str, tasks: arr(obj({ id: str, sha256: str })), unchanged: int }, []],
  'kb train': [
    { ran: bool, message: str, reason: str, detail: strs, round: int, version: nul(int), tasks: arr(obj({ task: str, kind: str, accepted: nul(bool), best_epoch: nul(int), train_ms: nul(int) })), samples: {}, clusters: {}, preprocessing: {}, duration_ms: int },
    ['ran', 'message'],
  ],
  'kb eval': [{ version: int, samples: int, tasks: arr(obj({ task: str })), overall: { type: 'object' } }],
  'kb versions': [{ versions: arr(obj({ version: int, parent: nul(int), created_at: iso, channel: nul(str), tasks: int, changed: strs, round: nul(int) })) }],
  'kb versions diff': [{ a: int, b: int, added: strs, removed: strs, changed: strs, same: strs, allocation_changed: bool, tasks: arr(obj({ task: str, change: str })) }],
  'kb rounds': [{ rounds: arr(obj({ round: int, task: str, kind: str, accepted: bool, train_ms: num })) }],
  'kb channel add': [{ name: str, version: nul(int), previous_version: nul(int), config: { type: 'object' } }],
  'kb channel ls': [{ channels: arr(obj({ name: str, version: nul(int), previous_version: nul(int), devices: int })) }],
  'kb rollout': [(channel as { properties: Record<string, Schema> }).properties, ['name', 'version', 'previous_version']],
  'kb promote': [(channel as { properties: Record<string, Schema> }).properties, ['name', 'version', 'previous_version']],
  'kb fleet': [{ devices: arr(obj({ id: str, channel: str, active_version: nul(int), last_seen: nul(iso) })) }],
  'kb bundle': [{ file: str, version: int, bytes: int, sha256: str, canary: arr(), key_transitions: int }, ['file', 'version', 'bytes', 'sha256']],
};

/** Commands without a run record: long-running servers (one {"listening"} line at start) and text output. */
export const NO_RECORD = ['serve', 'kb serve', 'completion', 'help'] as const;

/** The commands that have a --json run record. */
export const RECORD_COMMANDS = Object.keys(FIELDS);

/**
 * The JSON Schema of `command`'s record: the listed fields with their types (records may carry
 * more, e.g. a whole stored task; test/cli-json.test.ts also holds every key to the naming rule).
 * A failed run (exit != 0) must still carry the envelope
 * and `error`; its own fields are optional then (the run may have stopped before them).
 */
export function recordSchema(command: string): Schema {
  const f = FIELDS[command];
  if (!f) throw new Error(`no run record schema for "${command}"`);
  const [props, required = Object.keys(props)] = f;
  const envelopeKeys = ['time', 'device', 'command', 'exit'];
  return {
    $id: `sedna-ll/record/${command.replace(/ /g, '-')}`,
    type: 'object',
    properties: { ...ENVELOPE, command: { const: command }, ...props },
    required: envelopeKeys,
    if: { properties: { exit: { const: 0 } } },
    then: { required: [...envelopeKeys, ...required], not: { required: ['error'] } },
    else: { required: [...envelopeKeys, 'error'] },
  };
}
