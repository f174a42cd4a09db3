// The CLI and the training worker bundled into one CommonJS script each (what a Node SEA runs),
// with the few modules that assume files beside them swapped for their SEA versions:
//   src/version.ts                    -> src/sea/version.ts (version fixed at build time)
//   src/learn/worker-start.ts         -> src/sea/worker-start.ts (worker code is an asset)
//   src/sync/frames-worker-start.ts   -> src/sea/frames-worker-start.ts (push reads in the main thread)
//   bindings (better-sqlite3's loader) -> loadNative of src/sea/natives.ts (addon unpacked from an asset)
//   onnxruntime-node/dist/binding.js  -> its require of ../bin/napi-v6/<platform>/<arch>/... becomes
//                                        loadNative('onnxruntime_binding.node')
// and `const require = createRequire(import.meta.url);` lines dropped from our sources, so their
// lazy require() calls (onnxruntime-node, better-sqlite3, pngjs, jpeg-js) are bundled; they stay
// lazy (esbuild evaluates a required module on first call), which keeps `--version` fast.
import { build, type Plugin } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CREATE_REQUIRE_LINE, cjsBundleOptions, failOnWarnings } from '../esbuild-cjs.mjs';
import { ROOT } from './common.js';

const SEA = join(ROOT, 'src', 'sea');
const SUBSTITUTES: Array<[RegExp, string]> = [
  [/[\\/]src[\\/]version\.ts$/, join(SEA, 'version.ts')],
  [/[\\/]src[\\/]learn[\\/]worker-start\.ts$/, join(SEA, 'worker-start.ts')],
  [/[\\/]src[\\/]sync[\\/]frames-worker-start\.ts$/, join(SEA, 'frames-worker-start.ts')],
];
const ORT_BINDING_REQUIRE = 'require(`../bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node`)';

const seaPlugin: Plugin = {
  name: 'sedna-ll-sea',
  setup(b) {
    // better-sqlite3 calls require('bindings')('better_sqlite3.node'); `bindings` searches build
    // folders next to the caller, which a binary has not. A CommonJS stand-in (require() of it
    // must return the function itself):
    b.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'sea' }));
    b.onLoad({ filter: /^bindings$/, namespace: 'sea' }, () => ({
      contents: `module.exports = (name) => require(${JSON.stringify(join(SEA, 'natives.ts'))}).loadNative(name.endsWith('.node') ? name : name + '.node');`,
      loader: 'js',
      resolveDir: SEA,
    }));
    b.onLoad({ filter: /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      if (!src.includes(ORT_BINDING_REQUIRE)) throw new Error(`${args.path}: the binding require this build rewrites is gone (onnxruntime-node changed): update scripts/binaries/bundle.ts`);
      const natives = JSON.stringify(join(SEA, 'natives.ts'));
      return { contents: src.replace(ORT_BINDING_REQUIRE, `require(${natives}).loadNative('onnxruntime_binding.node')`), loader: 'js' };
    });
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      const sub = SUBSTITUTES.find(([re]) => re.test(args.path));
      const path = sub ? sub[1] : args.path;
      let src = readFileSync(path, 'utf8');
      if (CREATE_REQUIRE_LINE.test(src)) src = src.replace(CREATE_REQUIRE_LINE, '');
      if (/import\.meta/.test(src.replace(/\/\/.*$/gm, ''))) throw new Error(`${path}: uses import.meta, which a CommonJS single-file executable has not; give it a src/sea substitute in scripts/binaries/bundle.ts`);
      return { contents: src, loader: 'ts' };
    });
  },
};

export interface Bundles {
  /** the SEA main: src/sea/main.ts (tiny; runs `cli` unless asked for --version) */
  main: string;
  /** the CLI (src/cli.ts) */
  cli: string;
  /** the training worker (src/learn/train-worker.ts) */
  worker: string;
}

async function bundleOne(entry: string, version: string): Promise<string> {
  const r = await build({ ...cjsBundleOptions(version), entryPoints: [join(ROOT, entry)], minify: true, plugins: [seaPlugin] });
  failOnWarnings(r, entry, 'inside a binary');
  return r.outputFiles[0].text;
}

export async function bundle(): Promise<Bundles> {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const [main, cli, worker] = await Promise.all([bundleOne('src/sea/main.ts', version), bundleOne('src/cli.ts', version), bundleOne('src/learn/train-worker.ts', version)]);
  return { main, cli, worker };
}
