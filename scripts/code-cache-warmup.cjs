// Makes the V8 code cache of dist/cli.bundle.cjs (scripts/bundle-cli.mjs makeCodeCache runs
// this in a child Node): compile the bundle exactly as bin/sedna-ll does (the same wrapper text,
// and under the same name, or V8 rejects the cache), run `sedna-ll --help` with it, and at exit
// write the cache after a one-line JSON header (the bundle's id and the Node that made it) and a
// line with the sha256 of the cache data.
// Usage: node scripts/code-cache-warmup.cjs BUNDLE OUT
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname } = require('node:path');
const { Script } = require('node:vm');

const [bundle, out] = process.argv.slice(2);
const source = readFileSync(bundle, 'utf8');
const HEADER = '// sedna-ll cli bundle ';
if (!source.startsWith(HEADER)) throw new Error(`${bundle}: not a sedna-ll cli bundle`);
// keep in step with cacheHeader of scripts/bundle-cli.mjs (the build reuses a cache whose header matches)
const header = { bundle: source.slice(HEADER.length, source.indexOf('\n')), node: process.version, arch: process.arch, sum: 'sha256' };
// keep in step with bin/sedna-ll (SCRIPT_NAME there)
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: 'sedna-ll/dist/cli.bundle.cjs' });
process.on('exit', () => {
  // line 2: the data's sha256, checked by bin/sedna-ll before V8 sees the data (V8 checks only
  // its length, version and flags: damaged data crashed the process)
  const data = script.createCachedData();
  const sum = require('node:crypto').createHash('sha256').update(data).digest('hex');
  writeFileSync(out, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n${sum}\n`), data]));
});
process.argv = [process.argv[0], 'sedna-ll', '--help'];
const module_ = { exports: {} };
script.runInThisContext()(module_.exports, createRequire(bundle), module_, bundle, dirname(bundle));
