// `sedna-ll config get|set|unset|validate|show`: read and change the edge home's config.json by
// key path, checked against its JSON Schema (src/store/config-schema.ts) before anything is written.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_HELP, ReportedError, UsageError } from '../errors.js';
import { printResult, record, run } from './action.js';

const HELP = `
Keys are dotted paths into config.json (README "Configuration"): outbox.max_mb,
upload.payload, upload.per_task.<task>, upload.retention, upload.compress, rollout.activate,
rollout.trial_inferences, rollout.trial_rate_factor, rollout.canary_tolerance,
rollout.max_latency_ms, rollout.keep_local_tasks, images.max_pixels, images.resize, kb.url,
kb.ca_file. Values are JSON when they
parse as JSON (100, true, "x"), else strings. A change that would make the file invalid is
refused (exit 2) and nothing is written.

Examples:
  sedna-ll config show
  sedna-ll config get rollout.activate
  sedna-ll config set upload.compress gzip
  sedna-ll config set rollout.trial_inferences 500
  sedna-ll config unset upload.per_task.berlin
  sedna-ll config validate --json

${EXIT_HELP}
`;

/** config.json of the home, parsed but not validated (this command is how a bad one is fixed). */
async function readRaw(cmd: Command): Promise<{ file: string; home: string; raw: Record<string, unknown> }> {
  const { homePaths, resolveHome } = await import('../store/home.js');
  const home = resolveHome((cmd.optsWithGlobals() as { home?: string }).home);
  const file = homePaths(home).config;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${home}: not an edge home (no config.json); run "sedna-ll init --device-id ID" first` : `${file}: cannot read (${code})`);
  }
  try {
    return { file, home, raw: JSON.parse(text) };
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

export function register(program: Command): void {
  const config = program.command('config').description('read, change and check config.json (schema-checked; unknown keys and bad values refused)').addHelpText('after', HELP);

  config
    .command('get <key>')
    .description('print the value of KEY (defaults filled in); exit 1 when it is not set')
    .option('--json', 'one JSON record: key, value')
    .action(
      run(async (key: string, o: { json?: boolean }, cmd: Command) => {
        const [{ keyPath, getAt }, { DEFAULT_CONFIG }] = await Promise.all([import('../store/config-check.js'), import('../store/home.js')]);
        const { raw } = await readRaw(cmd);
        const path = keyPath(key);
        const v = getAt(raw, path) ?? getAt(DEFAULT_CONFIG, path);
        if (v === undefined) throw new ReportedError(`config key "${key}": not set`);
        printResult(o.json, { key, value: v }, show(v));
      }),
    );

  config
    .command('set <key> <value>')
    .description('set KEY to VALUE (JSON if it parses, else a string); refused when the result is invalid')
    .option('--json', 'one JSON record: key, value, file')
    .action(
      run(async (key: string, value: string, o: { json?: boolean }, cmd: Command) => {
        const [{ keyPath, setAt, parseValue, checkConfig }, { writeFileAtomic }] = await Promise.all([import('../store/config-check.js'), import('../durable/atomic-write.js')]);
        const { file, raw } = await readRaw(cmd);
        const path = keyPath(key);
        if (path[0] === 'device_id' || path[0] === 'created_at') throw new UsageError(`config key "${key}": set by init, not changeable`);
        const v = parseValue(value);
        // a JSON number beyond float64 (1e309) parses as Infinity, which the file would hold as
        // null: set exited 0 and every command after it refused the config (exit 2)
        if (typeof v === 'number' && !Number.isFinite(v)) throw new UsageError(`config set ${key}: ${value} is not a finite number`);
        const next = setAt(raw, path, v);
        // the check is of what the file will hold (Infinity inside an object value too)
        const text = JSON.stringify(next, null, 2) + '\n';
        checkConfig(JSON.parse(text), file);
        writeFileAtomic(file, text);
        if (o.json) return record({ key, value: v, file });
        process.stderr.write(`${key} = ${JSON.stringify(v)} (${file})\n`);
      }),
    );

  config
    .command('unset <key>')
    .description('remove KEY (its default applies again); refused when the result is invalid')
    .option('--json', 'one JSON record: key, removed, file')
    .action(
      run(async (key: string, o: { json?: boolean }, cmd: Command) => {
        const [{ keyPath, unsetAt, checkConfig }, { writeFileAtomic }] = await Promise.all([import('../store/config-check.js'), import('../durable/atomic-write.js')]);
        const { file, raw } = await readRaw(cmd);
        const { config: next, found } = unsetAt(raw, keyPath(key));
        if (found) {
          checkConfig(next, file);
          writeFileAtomic(file, JSON.stringify(next, null, 2) + '\n');
        }
        if (o.json) return record({ key, removed: found, file });
        process.stderr.write(found ? `${key} removed (${file})\n` : `${key} was not set\n`);
      }),
    );

  config
    .command('validate')
    .description('check config.json against its schema: exit 0, or exit 2 with the first bad key')
    .option('--json', 'one JSON record: file, valid (and error when invalid)')
    .action(
      run(async (o: { json?: boolean }, cmd: Command) => {
        const { checkConfig } = await import('../store/config-check.js');
        const { file, raw } = await readRaw(cmd);
        record({ file, valid: false });
        checkConfig(raw, file);
        record({ valid: true });
        if (!o.json) process.stderr.write(`${file}: valid\n`);
      }),
    );

  config
    .command('show')
    .description('print the effective configuration (the file with defaults filled in)')
    .option('--json', 'one JSON record: file, config')
    .action(
      run(async (o: { json?: boolean }, cmd: Command) => {
        const { loadConfig } = await import('../store/home.js');
        const { file, home } = await readRaw(cmd);
        const c = loadConfig(home);
        printResult(o.json, { file, config: c }, JSON.stringify(c, null, 2));
      }),
    );
}
