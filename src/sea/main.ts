// Single-file executables only: the script a binary starts with (its SEA "main"). Kept tiny so
// `sedna-ll --version` (asked often by scripts and the package's upgrade checks) costs less than
// `node -e 0`: it answers that from a build-time constant. Anything else runs the CLI bundle,
// an embedded asset compiled with the V8 code cache the build made for it on the target's own
// Node (a rejected cache only costs time: V8 compiles the source instead).
import { getAsset, getRawAsset } from 'node:sea';
import { Script } from 'node:vm';
import { BUNDLE_FILENAME, wrapBundle } from './bundle-wrapper.js';

declare const SEDNA_LL_BUILD_VERSION: string;

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e; // `| head` closing the pipe early is not our failure
  });
  process.stdout.write(`${SEDNA_LL_BUILD_VERSION}\n`);
} else {
  const script = new Script(wrapBundle(getAsset(BUNDLE_FILENAME, 'utf8')), {
    filename: BUNDLE_FILENAME,
    cachedData: Buffer.from(getRawAsset(`${BUNDLE_FILENAME}.cache`) as ArrayBuffer),
  });
  if (process.env.SEDNA_LL_DEBUG_CODE_CACHE) process.stderr.write(`sedna-ll: code cache ${script.cachedDataRejected ? 'rejected' : 'accepted'}\n`);
  // the bundle is CommonJS and needs only Node's built-in modules: the SEA's require serves those
  (script.runInThisContext() as (exports: unknown, req: NodeJS.Require, mod: NodeJS.Module, filename: string, dirname: string) => void)(
    module.exports,
    require,
    module,
    BUNDLE_FILENAME,
    '.',
  );
}
