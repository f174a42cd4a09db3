// How the single-file executable wraps its CLI bundle before compiling it: the same text at
// build time (scripts/binaries/sea.ts makes the V8 code cache from it) and at run time
// (src/sea/main.ts), or V8 would reject the cache.
export const BUNDLE_FILENAME = 'sedna-ll.cjs';

export function wrapBundle(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
}
