// The package version, read from package.json next to dist/. The single-file executables and
// dist/cli.bundle.cjs swap this module for src/sea/version.ts (the version fixed at build time:
// no package.json beside a binary; the bundle's code cache is made before it is in dist/).
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
