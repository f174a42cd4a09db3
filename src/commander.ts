// commander, loaded with require(): imported as an ES module, Node first parses its CommonJS
// entry with cjs-module-lexer (a WASM module it compiles on first use) to find the named
// exports; require() skips that. Measured (CPU of a process that only loads it and makes one
// Command, 12 runs each, load ~8): ~205 ms as an import, ~175 ms through require(), ~145 ms for
// `node -e 0`. Every command pays this at start, cron's `sync` every few minutes. The single-file
// executables and dist/cli.bundle.cjs (what bin/sedna-ll runs) bundle commander itself
// (scripts/binaries/bundle.ts, scripts/bundle-cli.mjs): this require is for the per-file dist/.
import { createRequire } from 'node:module';
import type * as Commander from 'commander';

const require = createRequire(import.meta.url);
const lib = require('commander') as typeof Commander;

export const { Command, CommanderError, InvalidArgumentError, Option } = lib;
export type Command = Commander.Command;
export type CommanderError = Commander.CommanderError;
export type Option = Commander.Option;
