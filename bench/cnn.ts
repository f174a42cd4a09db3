// CNN training speed: one epoch over 6 000 real MNIST digits (28x28, batch 32, the built-in
// network conv3x3x8 + pool, conv3x3x16 + pool, dense 64, softmax) by src/learn/cnn.ts against the
// straightforward reference of bench/lib/cnn-reference.ts (im2col + the dense trainer's kernels),
// both from the same initial weights in the same sample order, in the same process, alternating,
// medians of --runs. Also: achieved GFLOP/s and the fraction of one core's peak.
//
// Then one site model as the KB trains it (1 000 digits: 85 % fit, 15 % early-stopping slice,
// seeded), CNN vs the MLP 784-128-10, with accuracy on 1 000 MNIST test digits: the training
// time per site model next to the MLP's.
//
//   npm run bench:cnn [-- --runs 3 --n 6000 --site 1000]
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../src/random.js';
import { cnnGeometry, trainCnn } from '../src/learn/cnn.js';
import { shuffleInPlace, train } from '../src/learn/trainer.js';
import { argmaxRows, predictProba } from '../src/learn/dense.js';
import { cnnPredict } from '../src/learn/cnn.js';
import { referenceEpoch, referenceStart } from './lib/cnn-reference.js';
import { loadMnist } from './lib/mnist.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, n: { type: 'string', default: '6000' }, site: { type: 'string', default: '1000' }, out: { type: 'string', default: 'bench/out' } } });
const runs = Number(args.runs);
const n = Number(args.n);
const B = 32;
const hidden = [64];
const seed = 1;
const lr = 2e-3;
const l2 = 1e-4;

const raw = loadMnist('train');
const X = new Float32Array(n * 784);
for (let i = 0; i < n * 784; i++) X[i] = raw.pixels[i] / 255;
const y = Int32Array.from(raw.labels.subarray(0, n));

// trainCnn's first-epoch order (its seeded Fisher-Yates), so both see the same batches
const order = Int32Array.from({ length: n }, (_, i) => i);
shuffleInPlace(order, mulberry32((seed ^ 0x9e3779b9) >>> 0));

// multiply-adds per image: forward, and the backward pass's weight and input gradients
function flopsPerImage(): number {
  const filters = [8, 16];
  const { sizes, flat } = cnnGeometry([1, 28, 28], filters);
  let fwd = 0;
  let bwd = 0;
  let cin = 1;
  sizes.forEach(([h, w], l) => {
    const macs = h * w * filters[l] * cin * 9;
    fwd += macs;
    bwd += macs * (l === 0 ? 1 : 2); // dW, plus dcol except for the first layer
    cin = filters[l];
  });
  const dims = [flat, ...hidden, 10];
  for (let l = 0; l + 1 < dims.length; l++) {
    fwd += dims[l] * dims[l + 1];
    bwd += 2 * dims[l] * dims[l + 1];
  }
  return 2 * (fwd + bwd);
}

function cpuInfo(): { model: string; mhz: number; avx512: boolean; fma: boolean } {
  const t = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(t)?.[1] ?? 0);
  const flags = /flags\s*:\s*(.*)/.exec(t)?.[1] ?? '';
  return { model: /model name\s*:\s*(.*)/.exec(t)?.[1] ?? '?', mhz, avx512: /\bavx512f\b/.test(flags), fma: /\bfma\b/.test(flags) };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ours: number[] = [];
const ref: number[] = [];
let lossOurs = 0;
let lossRef = 0;
for (let run = 0; run < runs; run++) {
  let t = performance.now();
  const res = trainCnn({ X, y, n, d: 784 }, null, 10, { shape: [1, 28, 28], filters: [8, 16], hidden, epochs: 1, minSteps: 1, seed, lr, l2, batchSize: B });
  ours.push(performance.now() - t);
  lossOurs = res.history[0].trainLoss;
  t = performance.now();
  lossRef = referenceEpoch(X, y, n, order, referenceStart(seed, 10, hidden), B, lr, l2);
  ref.push(performance.now() - t);
  process.stderr.write(`run ${run + 1}/${runs}: cnn.ts ${(ours[run] / 1000).toFixed(2)} s, reference ${(ref[run] / 1000).toFixed(2)} s\n`);
}
const flops = flopsPerImage() * n;
const cpu = cpuInfo();
const ms = median(ours);
const gflops = flops / (ms / 1000) / 1e9;
// one core: WebAssembly SIMD is 128-bit with separate mul and add (no FMA): 2 pipes x 4 lanes x
// (mul + add) per cycle; native code could use 2 FMA pipes x 8 lanes (AVX2) x 2
const peakWasm = (cpu.mhz / 1000) * 2 * 4 * 2;
const peakNative = (cpu.mhz / 1000) * 2 * 8 * 2;
const result = {
  images: n,
  batch: B,
  network: 'conv3x3x8+relu+pool, conv3x3x16+relu+pool, dense 64, softmax (28x28x1)',
  epoch_ms_median: Math.round(ms),
  reference_epoch_ms_median: Math.round(median(ref)),
  speedup_vs_reference: Number((median(ref) / ms).toFixed(2)),
  train_loss: { cnn: Number(lossOurs.toFixed(4)), reference: Number(lossRef.toFixed(4)) },
  gflop_per_epoch: Number((flops / 1e9).toFixed(2)),
  gflops: Number(gflops.toFixed(2)),
  cpu,
  peak_gflops_one_core: { wasm_simd128: peakWasm, native_fma_avx2: peakNative },
  fraction_of_peak: { wasm_simd128: Number((gflops / peakWasm).toFixed(3)), native_fma_avx2: Number((gflops / peakNative).toFixed(3)) },
  runs: { cnn_ms: ours.map(Math.round), reference_ms: ref.map(Math.round) },
};
// ---- one site model: CNN vs MLP on the same 1 000 digits ----
const site = Number(args.site);
const test = loadMnist('test');
const tn = 1000;
const TX = new Float32Array(tn * 784);
for (let i = 0; i < tn * 784; i++) TX[i] = test.pixels[i] / 255;
const TY = test.labels.subarray(0, tn);
const nFit = Math.round(site * 0.85);
const fit = { X: X.subarray(0, nFit * 784), y: y.subarray(0, nFit), n: nFit, d: 784 };
const val = { X: X.subarray(nFit * 784, site * 784), y: y.subarray(nFit, site), n: site - nFit, d: 784 };
const accOf = (pred: Int32Array) => pred.filter((p, i) => p === TY[i]).length / tn;
let t1 = performance.now();
const cnnSite = trainCnn(fit, val, 10, { shape: [1, 28, 28], filters: [8, 16], hidden, seed });
const cnnSiteMs = performance.now() - t1;
const cnnSiteAcc = accOf(argmaxRows(cnnPredict(cnnSite.net, TX, tn), tn, 10));
t1 = performance.now();
const mlpSite = train(fit, val, 10, { arch: 'mlp', hidden: [128], lr: 1e-3, seed });
const mlpSiteMs = performance.now() - t1;
const mlpSiteAcc = accOf(argmaxRows(predictProba(mlpSite.net, TX, tn), tn, 10));
const siteModel = {
  digits: site,
  cnn: { train_s: Number((cnnSiteMs / 1000).toFixed(2)), epochs: cnnSite.epochsRun, test_accuracy: cnnSiteAcc },
  mlp: { train_s: Number((mlpSiteMs / 1000).toFixed(2)), epochs: mlpSite.epochsRun, test_accuracy: mlpSiteAcc },
};
Object.assign(result, { site_model: siteModel });

mkdirSync(args.out!, { recursive: true });
writeFileSync(join(args.out!, 'cnn.json'), JSON.stringify(result, null, 2) + '\n');
process.stdout.write(
  [
    `CNN epoch, ${n} MNIST images (28x28), batch ${B}, median of ${runs}:`,
    `  src/learn/cnn.ts        ${(ms / 1000).toFixed(2)} s   (train loss ${lossOurs.toFixed(4)})`,
    `  reference (im2col+dense) ${(median(ref) / 1000).toFixed(2)} s   (train loss ${lossRef.toFixed(4)})`,
    `  speed-up ${result.speedup_vs_reference}x`,
    `  ${result.gflop_per_epoch} GFLOP per epoch -> ${result.gflops} GFLOP/s on one core (${cpu.model}, ${cpu.mhz.toFixed(0)} MHz)`,
    `  = ${(100 * result.fraction_of_peak.wasm_simd128).toFixed(1)} % of the WebAssembly SIMD128 peak (${peakWasm.toFixed(1)} GFLOP/s), ${(100 * result.fraction_of_peak.native_fma_avx2).toFixed(1)} % of the native AVX2-FMA peak (${peakNative.toFixed(1)} GFLOP/s)`,
    `one site model on ${site} digits (85 % fit, early stopping), test accuracy on ${tn} MNIST test digits:`,
    `  cnn  ${siteModel.cnn.train_s} s, ${siteModel.cnn.epochs} epochs, accuracy ${cnnSiteAcc.toFixed(3)}`,
    `  mlp  ${siteModel.mlp.train_s} s, ${siteModel.mlp.epochs} epochs, accuracy ${mlpSiteAcc.toFixed(3)}`,
    '',
  ].join('\n'),
);
