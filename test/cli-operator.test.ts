// Operator experience (issue 13, parts 3-5): colour follows NO_COLOR / FORCE_COLOR / TERM=dumb;
// config.json is schema-checked by every command and changed only through valid edits; the
// ahead-of-time config validator is not stale; shell completion and help Examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { sedna, tempDir } from './helpers/cli.js';
import { colorLevel } from '../src/commands/color.js';
import { configProblem } from '../src/store/config-check.js';
import { CONFIG_SCHEMA } from '../src/store/config-schema.js';
import { GENERATED_CONFIG_FILE, generateConfigValidatorSource } from '../scripts/gen-config-validator.js';

const require = createRequire(import.meta.url);
const ESC = '\x1b[';

test('colour level: FORCE_COLOR wins, then NO_COLOR, TERM=dumb, no terminal', () => {
  const tty = Object.assign(new Writable(), { isTTY: true });
  const pipe = new Writable();
  assert.equal(colorLevel(tty, { TERM: 'xterm' }), 1);
  assert.equal(colorLevel(tty, { TERM: 'xterm-256color' }), 2);
  assert.equal(colorLevel(tty, { COLORTERM: 'truecolor' }), 3);
  assert.equal(colorLevel(tty, { NO_COLOR: '1', TERM: 'xterm' }), 0);
  assert.equal(colorLevel(tty, { NO_COLOR: '', TERM: 'xterm' }), 1, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colorLevel(tty, { TERM: 'dumb' }), 0);
  assert.equal(colorLevel(pipe, {}), 0);
  assert.equal(colorLevel(pipe, { FORCE_COLOR: '1' }), 1);
  assert.equal(colorLevel(pipe, { FORCE_COLOR: '3', NO_COLOR: '1' }), 3);
  assert.equal(colorLevel(tty, { FORCE_COLOR: '0' }), 0);
  assert.equal(colorLevel(tty, { FORCE_COLOR: 'false' }), 0);
});

test('status and errors: coloured only when asked, one error prefix', () => {
  const t = tempDir();
  try {
    const home = join(t.dir, 'h');
    assert.equal(sedna(['init', '--device-id', 'gw-1'], { home }).code, 0);
    const plain = sedna(['status'], { home, env: { FORCE_COLOR: undefined, NO_COLOR: undefined } });
    assert.ok(!plain.stdout.includes(ESC), 'piped: no escapes');
    const forced = sedna(['status'], { home, env: { FORCE_COLOR: '1' } });
    assert.ok(forced.stdout.includes(`${ESC}1m`), 'FORCE_COLOR=1: bold device');
    const off = sedna(['status'], { home, env: { FORCE_COLOR: '0' } });
    assert.ok(!off.stdout.includes(ESC));
    const err = sedna(['model', 'activate', '9'], { home, env: { FORCE_COLOR: '1' } });
    assert.equal(err.code, 2);
    assert.match(err.stderr, /^\x1b\[31msedna-ll:\x1b\[39m version 9: not installed/);
    assert.match(sedna(['model', 'activate', '9'], { home }).stderr, /^sedna-ll: version 9: not installed/);
  } finally {
    t.cleanup();
  }
});

test('config: the generated validator is CONFIG_SCHEMA; unknown keys and bad values are refused with the key path', () => {
  assert.equal(readFileSync(GENERATED_CONFIG_FILE, 'utf8'), generateConfigValidatorSource(), 'run: node --import tsx scripts/gen-config-validator.ts');
  const Ajv = require('ajv').default;
  const runtime = new Ajv({ allErrors: false, strict: false }).compile(CONFIG_SCHEMA);
  const ok = { device_id: 'gw-1', upload: { compress: 'gzip', per_task: { a: 'none' } }, rollout: { trial_inferences: 3, keep_local_tasks: true } };
  for (const [c, want] of [
    [ok, null],
    [{ ...ok, upload: { compres: 'x' } }, 'upload.compres: unknown key'],
    [{ ...ok, upload: { compress: 'zip' } }, 'upload.compress "zip": must be equal to one of the allowed values (auto, gzip, none)'],
    [{ ...ok, rollout: { trial_inferences: 1.5 } }, 'rollout.trial_inferences 1.5: must be integer'],
    [{ ...ok, upload: { per_task: { a: 'maybe' } } }, 'upload.per_task.a "maybe": must be equal to one of the allowed values (raw, none)'],
    [{ upload: {} }, 'device_id: required'],
  ] as const) {
    assert.equal(configProblem(c), want, JSON.stringify(c));
    assert.equal(runtime(c), want === null, `ajv at run time agrees on ${JSON.stringify(c)}`);
  }

  const t = tempDir();
  try {
    const home = join(t.dir, 'h');
    assert.equal(sedna(['init', '--device-id', 'gw-1'], { home }).code, 0);
    const file = join(home, 'config.json');
    const before = readFileSync(file, 'utf8');
    let r = sedna(['config', 'set', 'upload.compress', 'zip'], { home });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config\.json: upload\.compress "zip": must be equal to one of the allowed values/);
    assert.equal(readFileSync(file, 'utf8'), before, 'nothing written');
    r = sedna(['config', 'set', 'rollout.trial_inferences', '50'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).rollout.trial_inferences, 50, 'a JSON value is stored as JSON');
    assert.equal(sedna(['config', 'get', 'rollout.trial_inferences'], { home }).stdout, '50\n');
    assert.equal(sedna(['config', 'get', 'upload.retention'], { home }).stdout, 'keep\n', 'defaults answer get');
    assert.equal(sedna(['config', 'unset', 'rollout.trial_inferences'], { home }).code, 0);
    assert.equal(sedna(['config', 'get', 'rollout.trial_inferences'], { home }).stdout, '200\n');
    assert.equal(sedna(['config', 'set', 'device_id', 'x'], { home }).code, 2);

    // an invalid file: every command refuses to start with one line naming the key
    const c = JSON.parse(before);
    c.upload.compres = 'gzip';
    writeFileSync(file, JSON.stringify(c));
    for (const args of [['status'], ['sync'], ['samples', 'ls'], ['model', 'ls'], ['infer'], ['config', 'validate']]) {
      r = sedna(args, { home, input: '' });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
      assert.match(r.stderr, /config\.json: upload\.compres: unknown key/, args.join(' '));
    }
    // config itself still reads and repairs it
    assert.equal(sedna(['config', 'unset', 'upload.compres'], { home }).code, 0);
    assert.equal(sedna(['config', 'validate'], { home }).code, 0);
  } finally {
    t.cleanup();
  }
});

test('completion scripts come from the command tree; bash completes subcommands and options', () => {
  const bash = sedna(['completion', 'bash']);
  assert.equal(bash.code, 0, bash.stderr);
  const complete = (words: string[]) => {
    const r = spawnSync('bash', ['-c', `source /dev/stdin <<'EOF'\n${bash.stdout}\nEOF\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _sedna_ll; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split(' ');
  };
  assert.deepEqual(complete(['sedna-ll', 'kb', 'dev']), ['device']);
  assert.deepEqual(complete(['sedna-ll', 'kb', 'device', '']), ['add', 'ls', 'revoke', 'set', '--help']);
  assert.deepEqual(complete(['sedna-ll', '--home', '/x', 'sync', '--b']), ['--batch-size', '--batch-bytes']);
  assert.ok(complete(['sedna-ll', 'con']).includes('config'));
  for (const sh of ['zsh', 'fish']) {
    const r = sedna(['completion', sh]);
    assert.equal(r.code, 0);
    assert.ok(r.stdout.includes('kb device') && r.stdout.includes('--batch-size'), sh);
  }
  const bad = sedna(['completion', 'tcsh']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /expected bash, zsh or fish/);
});

test('the most used commands have an Examples section in their help', () => {
  const cmds = [['init'], ['infer'], ['sync'], ['status'], ['feedback'], ['task', 'add'], ['samples', 'ls'], ['model', 'activate'], ['model', 'install'], ['kb', 'train'], ['kb', 'serve'], ['kb', 'samples', 'import'], ['kb', 'device', 'add'], ['config']];
  for (const c of cmds) {
    const r = sedna([...c, '--help']);
    assert.equal(r.code, 0, c.join(' '));
    assert.match(r.stdout, /\nExamples:\n {2}(sedna-ll|source|echo|SEDNA_LL)/, c.join(' '));
  }
});
