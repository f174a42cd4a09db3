// Single-file executables only (scripts/build-binaries.ts substitutes it for src/version.ts):
// the version is fixed at build time by esbuild's `define`.
declare const SEDNA_LL_BUILD_VERSION: string;

export function packageVersion(): string {
  return SEDNA_LL_BUILD_VERSION;
}
