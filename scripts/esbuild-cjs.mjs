// @ts-check
// What the two CommonJS bundles of the CLI share: dist/cli.bundle.cjs (scripts/bundle-cli.mjs,
// run by node from `npm run build`) and the single-file executables' scripts
// (scripts/binaries/bundle.ts, run by tsx). Plain .mjs so both can import it. Each adds its own
// plugin (what stays external, which sources are swapped) and minify or not.

/** `const require = createRequire(import.meta.url);` in our sources: dropped in a bundle, whose own require then serves their require() calls */
export const CREATE_REQUIRE_LINE = /^const require = createRequire\(import\.meta\.url\);$/m;

/**
 * esbuild options of a Node 20 CommonJS bundle held in memory (write: false), version fixed.
 * @param {string} version the package version (src/sea/version.ts reads SEDNA_LL_BUILD_VERSION)
 * @returns {import('esbuild').BuildOptions & { write: false }}
 */
export function cjsBundleOptions(version) {
  return {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // readable stack traces: function and class names kept
    keepNames: true,
    legalComments: 'eof',
    write: false,
    logLevel: 'silent',
    define: { SEDNA_LL_BUILD_VERSION: JSON.stringify(version) },
    // import() as require(): a script compiled by vm.Script from a code cache (bin/sedna-ll on
    // Node 20) or a SEA's main has no dynamic-import callback, so a real import() would throw
    supported: { 'dynamic-import': false },
  };
}

/**
 * Throw when esbuild warned: each warning may be a module that breaks in the bundle.
 * @param {import('esbuild').BuildResult} r
 * @param {string} entry what was bundled
 * @param {string} where where the module would break
 */
export function failOnWarnings(r, entry, where) {
  if (!r.warnings.length) return;
  throw new Error(`esbuild warnings bundling ${entry} (each may be a module that breaks ${where}):\n${r.warnings.map((w) => `${w.location?.file}:${w.location?.line}: ${w.text}`).join('\n')}`);
}
