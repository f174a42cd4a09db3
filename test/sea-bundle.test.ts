// The single-file executables' scripts (scripts/binaries/bundle.ts) bundle: every module on
// their path passes the SEA plugin's checks (no import.meta beyond the dropped createRequire
// line, no esbuild warning). test/binaries.test.ts builds and runs the binaries, but skips
// where their tools are missing; this checks the bundling step alone, in seconds, everywhere.
// A module using import.meta.url elsewhere (src/kb/server/route-validators.ts's createRequire
// inside a function) failed `npm run build:binaries`, and with it CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundle } from '../scripts/binaries/bundle.js';

test('the single-file executables bundle (scripts/binaries/bundle.ts): cli, main and train worker', async () => {
  const b = await bundle();
  assert.ok(b.main.length > 0 && b.cli.length > 1_000_000 && b.worker.length > 10_000, `${b.main.length} / ${b.cli.length} / ${b.worker.length} characters`);
  // kb serve's route validators (route-validators.ts) are in the binary's CLI
  assert.match(b.cli, /no generated validator for the /);
});
