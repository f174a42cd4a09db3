// The package version, read from package.json next to dist/. The single-file executables swap
// this module for src/sea/version.ts (there is no package.json beside a binary).
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
