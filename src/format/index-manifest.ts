// The task index (index.json): one per KB version, shared by edge and cloud.
// Plain JSON, schema-validated on both sides (validateIndex); no code, no pickles.
// The edge validates an index when it installs it (task add, sync pull, bundle install);
// infer trusts the installed copy, which was validated and hash-checked on the way in.

export const INDEX_FORMAT = 'sedna-ll/index@1';

export type FilterType = 'threshold' | 'cross_entropy' | 'ibt' | 'margin' | 'random';
export type UnseenMethod = 'attr' | 'confidence' | 'entropy' | 'distance' | 'features';
export const UNSEEN_METHODS: readonly UnseenMethod[] = ['attr', 'confidence', 'entropy', 'distance', 'features'];

export interface RateCaps {
  per_minute?: number;
  per_hour?: number;
  per_day?: number;
}

/** One hard-example filter. A sample is hard when any configured filter says so. */
export interface HardFilterConfig {
  type: FilterType;
  /** threshold: mean score < t; cross_entropy: 1 + sum p ln p / ln K < t; margin: top1 - top2 < t */
  threshold?: number;
  /** ibt: a box is low-confidence when its score <= threshold_box ... */
  threshold_box?: number;
  /** ... and the image is hard when the share of such boxes >= 1 - threshold_img */
  threshold_img?: number;
  /** random: probability that a sample is picked */
  ratio?: number;
  caps?: RateCaps;
}

export interface UnseenConfig {
  methods: UnseenMethod[];
  combine: 'any' | 'all';
  /** max probability below this -> unseen (a task's own thresholds.confidence wins) */
  confidence?: number;
  /** normalised entropy above this -> unseen (a task's own thresholds.entropy wins) */
  entropy?: number;
  /**
   * target false-positive rate of the COMBINED flag the tasks' thresholds were calibrated to
   * (on each task's held-out in-domain samples); informational for the edge
   */
  fpr?: number;
}

/**
 * Feature-space statistics of a task (the "features" unseen method): its model's penultimate
 * layer (output `output`) on the task's training samples, as a low-rank Mahalanobis metric with
 * a shared, shrunk covariance: d^2(f) = min over class means mu_c of
 *   sum_i (v_i . (f - mu_c))^2 / eigen_i + (|f - mu_c|^2 - sum_i (v_i . (f - mu_c))^2) / residual
 * (v_i: the top `eigen.length` principal directions; residual: the variance left outside them).
 * Float arrays are little-endian float32, base64: a 128-wide layer with 10 classes and rank 16
 * is ~18 KB instead of ~40 KB of JSON numbers.
 */
export interface FeatureStats {
  output: string;
  dim: number;
  /** class means, classes x dim float32 (base64) */
  means: string;
  /** orthonormal principal directions, eigen.length x dim float32 (base64) */
  basis: string;
  eigen: number[];
  residual: number;
}

export interface AllocationConfig {
  /** attr: by attribute key; centroid: nearest task centroid; attr+centroid: attr, else centroid */
  method: 'attr' | 'centroid' | 'attr+centroid';
  /** attribute keys (normalised) whose joined values name a task */
  attr_keys: string[];
  /** where centroids live: the model input space (after preprocessing) */
  space: 'input';
  /** task id that serves samples no task matches (normally "global"); null: none */
  fallback: string | null;
}

export interface TensorSpec {
  name: string;
  /** dims; -1 or a string for a dynamic dim (the batch) */
  shape: (number | string)[];
  dtype: 'float32';
}

export interface Preprocessing {
  /** vector: x is used as is (after optional scale/mean/std); image: decode + resize first */
  kind: 'vector' | 'image';
  /** multiply each value first (e.g. 1/255) */
  scale?: number;
  /** then subtract mean and divide by std (scalars or per channel) */
  mean?: number[];
  std?: number[];
  /** image only */
  width?: number;
  height?: number;
  channels?: 1 | 3;
  layout?: 'NCHW' | 'NHWC';
}

export interface ModelRef {
  sha256: string;
  /** relative path in a KB version or bundle: models/<sha256>.onnx */
  file: string;
  size: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  labels: string[];
  preprocessing: Preprocessing;
  /** what the first output holds: probabilities (rows sum to 1) or logits (softmax applied by the edge) */
  output_kind: 'probabilities' | 'logits';
  /** model family, e.g. "mlp", "softmax", "external" */
  arch?: string;
}

export interface TaskEntry {
  id: string;
  /** normalised attribute key/values that define the task (empty for clustered or global tasks) */
  attrs: Record<string, string>;
  /** centroid in allocation space and its radius (distance unseen detection) */
  centroid?: number[];
  radius?: number;
  /** task whose weights this task's model started from (transfer), if any */
  parent?: string | null;
  model: ModelRef;
  /**
   * per-task calibrated thresholds (override the index-wide unseen config): max p below
   * confidence, normalised entropy above entropy, centroid distance above distance (else the
   * radius), Mahalanobis feature distance above features
   */
  thresholds?: UnseenThresholds;
  /** penultimate-layer statistics for the "features" method (absent: the method does not apply) */
  features?: FeatureStats;
  metrics?: Record<string, number>;
  samples?: number;
}

export interface UnseenThresholds {
  confidence?: number;
  entropy?: number;
  distance?: number;
  features?: number;
}

export interface TaskIndex {
  format: typeof INDEX_FORMAT;
  version: number;
  created_at: string;
  parent: number | null;
  /** who made it: "kb" (signed by the KB) or "local" (task add on the edge) */
  origin: 'kb' | 'local';
  tasks: TaskEntry[];
  allocation: AllocationConfig;
  unseen: UnseenConfig;
  hard_examples: HardFilterConfig[];
  /** free-form notes (round, training summary); never interpreted */
  notes?: Record<string, unknown>;
}

export const DEFAULT_ALLOCATION: AllocationConfig = { method: 'attr+centroid', attr_keys: ['site'], space: 'input', fallback: 'global' };
export const DEFAULT_UNSEEN: UnseenConfig = { methods: ['attr', 'confidence'], combine: 'any', confidence: 0.5 };
export const DEFAULT_HARD: HardFilterConfig[] = [{ type: 'cross_entropy', threshold: 0.5 }];

const SHA256_RE = '^[0-9a-f]{64}$';

const tensorSpec = {
  type: 'object',
  required: ['name', 'shape', 'dtype'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1 },
    shape: { type: 'array', items: { anyOf: [{ type: 'integer' }, { type: 'string' }] } },
    dtype: { const: 'float32' },
  },
};

const numArray = { type: 'array', items: { type: 'number' } };

/** A model's input preprocessing: in the index, and with each logged image sample in a push. */
export const PREPROCESSING_SCHEMA = {
  type: 'object',
  required: ['kind'],
  additionalProperties: false,
  properties: {
    kind: { enum: ['vector', 'image'] },
    scale: { type: 'number' },
    mean: numArray,
    std: numArray,
    width: { type: 'integer', minimum: 1 },
    height: { type: 'integer', minimum: 1 },
    channels: { enum: [1, 3] },
    layout: { enum: ['NCHW', 'NHWC'] },
  },
} as const;

/** JSON Schema (draft-07) of index.json. */
export const INDEX_SCHEMA = {
  $id: 'sedna-ll/index@1',
  type: 'object',
  required: ['format', 'version', 'created_at', 'parent', 'origin', 'tasks', 'allocation', 'unseen', 'hard_examples'],
  additionalProperties: false,
  properties: {
    format: { const: INDEX_FORMAT },
    version: { type: 'integer', minimum: 1 },
    created_at: { type: 'string', minLength: 1 },
    parent: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }] },
    origin: { enum: ['kb', 'local'] },
    notes: { type: 'object' },
    tasks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'attrs', 'model'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
          attrs: { type: 'object', additionalProperties: { type: 'string' } },
          centroid: numArray,
          radius: { type: 'number', minimum: 0 },
          parent: { anyOf: [{ type: 'string' }, { type: 'null' }] },
          thresholds: {
            type: 'object',
            additionalProperties: false,
            properties: { confidence: { type: 'number' }, entropy: { type: 'number' }, distance: { type: 'number', minimum: 0 }, features: { type: 'number', minimum: 0 } },
          },
          features: {
            type: 'object',
            required: ['output', 'dim', 'means', 'basis', 'eigen', 'residual'],
            additionalProperties: false,
            properties: {
              output: { type: 'string', minLength: 1 },
              dim: { type: 'integer', minimum: 1 },
              means: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
              basis: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
              eigen: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 } },
              residual: { type: 'number', exclusiveMinimum: 0 },
            },
          },
          metrics: { type: 'object', additionalProperties: { type: 'number' } },
          samples: { type: 'integer', minimum: 0 },
          model: {
            type: 'object',
            required: ['sha256', 'file', 'size', 'inputs', 'outputs', 'labels', 'preprocessing', 'output_kind'],
            additionalProperties: false,
            properties: {
              sha256: { type: 'string', pattern: SHA256_RE },
              file: { type: 'string', pattern: '^models/[0-9a-f]{64}\\.onnx$' },
              size: { type: 'integer', minimum: 1 },
              inputs: { type: 'array', minItems: 1, items: tensorSpec },
              outputs: { type: 'array', minItems: 1, items: tensorSpec },
              labels: { type: 'array', items: { type: 'string' } },
              output_kind: { enum: ['probabilities', 'logits'] },
              arch: { type: 'string' },
              preprocessing: PREPROCESSING_SCHEMA,
            },
          },
        },
      },
    },
    allocation: {
      type: 'object',
      required: ['method', 'attr_keys', 'space', 'fallback'],
      additionalProperties: false,
      properties: {
        method: { enum: ['attr', 'centroid', 'attr+centroid'] },
        attr_keys: { type: 'array', items: { type: 'string' } },
        space: { const: 'input' },
        fallback: { anyOf: [{ type: 'string' }, { type: 'null' }] },
      },
    },
    unseen: {
      type: 'object',
      required: ['methods', 'combine'],
      additionalProperties: false,
      properties: {
        methods: { type: 'array', items: { enum: ['attr', 'confidence', 'entropy', 'distance', 'features'] } },
        combine: { enum: ['any', 'all'] },
        fpr: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
        confidence: { type: 'number', minimum: 0, maximum: 1 },
        entropy: { type: 'number', minimum: 0, maximum: 1 },
      },
    },
    hard_examples: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type'],
        additionalProperties: false,
        properties: {
          type: { enum: ['threshold', 'cross_entropy', 'ibt', 'margin', 'random'] },
          threshold: { type: 'number' },
          threshold_box: { type: 'number' },
          threshold_img: { type: 'number' },
          ratio: { type: 'number', minimum: 0, maximum: 1 },
          caps: {
            type: 'object',
            additionalProperties: false,
            properties: {
              per_minute: { type: 'integer', minimum: 0 },
              per_hour: { type: 'integer', minimum: 0 },
              per_day: { type: 'integer', minimum: 0 },
            },
          },
        },
      },
    },
  },
} as const;
