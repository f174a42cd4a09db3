// Edge homes for the runtime tests: a real home (init), real tiny ONNX models, and an index
// installed and activated through the store's version API (the same path `task add` takes).
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { AllocationConfig, HardFilterConfig, Preprocessing, TaskEntry, TaskIndex, UnseenConfig } from '../src/format/index-manifest.js';
import { INDEX_FORMAT } from '../src/format/index-manifest.js';
import { openEdgeDb } from '../src/store/db.js';
import { homePaths } from '../src/store/home.js';
import { initHome } from '../src/store/init-home.js';
import { activateVersion, installVersion } from '../src/store/versions.js';

export interface TaskSpec {
  id: string;
  model: string;
  inDim: number | number[];
  outDim: number;
  attrs?: Record<string, string>;
  labels?: string[];
  outputKind?: 'probabilities' | 'logits';
  preprocessing?: Preprocessing;
  centroid?: number[];
  radius?: number;
  thresholds?: TaskEntry['thresholds'];
  inputName?: string;
  outputName?: string;
}

export interface IndexSpec {
  tasks: TaskSpec[];
  allocation?: Partial<AllocationConfig>;
  unseen?: UnseenConfig;
  hard?: HardFilterConfig[];
  version?: number;
}

export function buildIndex(spec: IndexSpec): TaskIndex {
  return {
    format: INDEX_FORMAT,
    version: spec.version ?? 1,
    created_at: new Date().toISOString(),
    parent: null,
    origin: 'local',
    tasks: spec.tasks.map((t) => {
      const bytes = readFileSync(t.model);
      const sha = createHash('sha256').update(bytes).digest('hex');
      const inDims = Array.isArray(t.inDim) ? t.inDim : [t.inDim];
      const e: TaskEntry = {
        id: t.id,
        attrs: t.attrs ?? {},
        model: {
          sha256: sha,
          file: `models/${sha}.onnx`,
          size: statSync(t.model).size,
          inputs: [{ name: t.inputName ?? 'input', shape: ['N', ...inDims], dtype: 'float32' }],
          outputs: [{ name: t.outputName ?? (t.outputKind === 'logits' ? 'logits' : 'probabilities'), shape: ['N', t.outDim], dtype: 'float32' }],
          labels: t.labels ?? [],
          preprocessing: t.preprocessing ?? { kind: 'vector' },
          output_kind: t.outputKind ?? 'probabilities',
        },
      };
      if (t.centroid) e.centroid = t.centroid;
      if (t.radius !== undefined) e.radius = t.radius;
      if (t.thresholds) e.thresholds = t.thresholds;
      return e;
    }),
    allocation: { method: 'attr+centroid', attr_keys: ['site'], space: 'input', fallback: 'global', ...spec.allocation },
    unseen: spec.unseen ?? { methods: ['attr'], combine: 'any' },
    hard_examples: spec.hard ?? [],
  };
}

/** init a home and install + activate an index built from spec; returns the version id. */
export function makeHome(home: string, spec: IndexSpec): string {
  initHome({ home, deviceId: 'edge-test' });
  const paths = homePaths(home);
  const index = buildIndex(spec);
  const byShaPath = new Map(spec.tasks.map((t, i) => [index.tasks[i].model.sha256, t.model]));
  const db = openEdgeDb(paths.db);
  try {
    const id = installVersion(paths, db, { indexBytes: Buffer.from(JSON.stringify(index, null, 2)), sig: null, origin: 'local', modelPath: (sha) => byShaPath.get(sha)! });
    activateVersion(db, id);
    return id;
  } finally {
    db.close();
  }
}

/** Rows of the outbox for assertions. */
export function outboxRows(home: string): { id: string; task: string; hard: number; unseen: number; unseen_reason: string | null; hard_reasons: string; payload_kind: string }[] {
  const db = openEdgeDb(homePaths(home).db);
  try {
    return db.prepare('SELECT id, task, hard, unseen, unseen_reason, hard_reasons, payload_kind FROM samples ORDER BY created_at, id').all() as never;
  } finally {
    db.close();
  }
}
