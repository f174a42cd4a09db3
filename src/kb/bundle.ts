// `kb bundle VERSION -o FILE`: a published version as a signed offline bundle, with canary
// records whose expected outputs are computed here by running the version's own models
// (onnxruntime-node, through onnx/checked-model.ts, the same code the edge checks them with).
// Canary inputs: the task's held-out samples, else its labelled ones, else any of its samples
// with a vector payload of the right size; random inputs of the right shape when it has none.
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { CanaryRecord } from '../rollout/bundle-layout.js';
import { signCanary, writeBundle } from '../rollout/bundle.js';
import { UsageError, VerificationError } from '../errors.js';
import type { TaskEntry, TaskIndex } from '../format/index-manifest.js';
import { parseIndex } from '../format/validate-index.js';
import { CheckedModel, syntheticInputs } from '../onnx/checked-model.js';
import { f32Values } from './samples-io.js';
import { keyTransitions } from './signing-key.js';
import type { KbStore, SampleFilter, SampleStore } from './store.js';

export interface KbBundleResult {
  file: string;
  version: number;
  bytes: number;
  sha256: string;
  canary: { task: string; records: number; source: 'heldout' | 'labelled' | 'samples' | 'random' }[];
  /** key transitions the bundle carries (keys.json; 0: the KB never rotated its key) */
  key_transitions: number;
}

async function canaryInputs(store: SampleStore, task: TaskEntry, features: number, n: number): Promise<{ xs: number[][]; attrs: Record<string, string>[]; source: KbBundleResult['canary'][number]['source'] }> {
  const tries: [KbBundleResult['canary'][number]['source'], SampleFilter][] = [
    ['heldout', { assigned_task: task.id, split: 'heldout' }],
    ['heldout', { task: task.id, split: 'heldout' }],
    ['labelled', { task: task.id, labelled: true }],
    ['samples', { task: task.id }],
  ];
  for (const [source, filter] of tries) {
    const xs: number[][] = [];
    const attrs: Record<string, string>[] = [];
    // one snapshot read with payloads (not a query per sample) of at most 200 samples
    let seen = 0;
    scan: for await (const page of store.scanSamples(filter, { batch: 200 })) for (const s of page) {
      if (++seen > 200) break scan;
      if (s.payload_kind !== 'f32') continue;
      const p = s.payload;
      if (!p) continue;
      const x = f32Values(p);
      if (x.length !== features) continue;
      xs.push(x);
      attrs.push(s.attrs);
      if (xs.length >= n) break scan;
    }
    if (xs.length) return { xs, attrs, source };
  }
  return { xs: syntheticInputs(task, n), attrs: [], source: 'random' };
}

/** Write KB version `version` as a bundle to `out` with `perTask` canary records per task. */
export async function buildKbBundle(store: KbStore, version: number, out: string, opts: { perTask?: number } = {}): Promise<KbBundleResult> {
  const files = await store.readVersionIndex(version);
  if (!files) throw new UsageError(`KB version ${version} does not exist (see "sedna-ll kb versions")`);
  const index: TaskIndex = parseIndex(files.bytes, `KB version ${version} index.json`);
  const perTask = opts.perTask ?? 4;
  const work = join(dirname(resolve(out)), `.sedna-ll-bundle-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(work, { recursive: true });
  try {
    const local = new Map<string, string>();
    for (const t of index.tasks) {
      const sha = t.model.sha256;
      if (local.has(sha)) continue;
      const p = join(work, `${sha}.onnx`);
      await pipeline(await store.blobs.get(sha), createWriteStream(p));
      local.set(sha, p);
    }
    const canary: CanaryRecord[] = [];
    const summary: KbBundleResult['canary'] = [];
    for (const t of index.tasks) {
      const m = await CheckedModel.load(local.get(t.model.sha256)!, t).catch((e: Error) => {
        throw new VerificationError(`KB version ${version}: ${e.message}`);
      });
      try {
        const { xs, attrs, source } = await canaryInputs(store, t, m.features, perTask);
        const ys = await m.run(xs);
        xs.forEach((x, i) => canary.push({ task: t.id, x, expected: ys[i], ...(attrs[i] && Object.keys(attrs[i]).length ? { attrs: attrs[i] } : {}) }));
        summary.push({ task: t.id, records: xs.length, source });
      } finally {
        await m.release();
      }
    }
    // the canary is signed too, bound to this index: it is not part of the signed index.json
    const privateKey = await store.signingKey();
    const canarySig = canary.length ? signCanary(files.bytes, canary, privateKey) : null;
    // the whole chain: an edge offline through rotations (or enrolled with a newer key) walks it
    // to the key of this version, and to the key that signed the canary just now
    const chain = await keyTransitions(store);
    const r = await writeBundle(out, { indexBytes: files.bytes, sig: files.sig, modelPath: (sha) => local.get(sha)!, canary, canarySig, keyTransitions: chain }, { tmpRoot: work });
    await store.logEvent('bundle', { version, file: resolve(out), sha256: r.sha256, canary: canary.length, key_transitions: chain.length });
    return { file: out, version, ...r, canary: summary, key_transitions: chain.length };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
