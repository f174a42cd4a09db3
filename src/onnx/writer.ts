// A minimal ONNX (protobuf) writer for the dense models sedna-ll trains and the tests build:
// Gemm -> Relu -> ... -> Gemm [-> Softmax]. onnxruntime-node has no training or export API,
// and pulling in a protobuf runtime for five message types is not worth it.
// Field numbers follow onnx.proto (IR version 8, default-domain opset 13).

const WT_VARINT = 0;
const WT_LEN = 2;
const WT_I32 = 5;

export class PB {
  private chunks: Buffer[] = [];
  private varint(n: number | bigint): void {
    let v = BigInt(n);
    if (v < 0n) v = (1n << 64n) + v; // two's complement for negative int64
    const bytes: number[] = [];
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) b |= 0x80;
      bytes.push(b);
    } while (v > 0n);
    this.chunks.push(Buffer.from(bytes));
  }
  private tag(field: number, wt: number): void {
    this.varint((field << 3) | wt);
  }
  int(field: number, n: number | bigint): this {
    this.tag(field, WT_VARINT);
    this.varint(n);
    return this;
  }
  float(field: number, f: number): this {
    this.tag(field, WT_I32);
    const b = Buffer.alloc(4);
    b.writeFloatLE(f);
    this.chunks.push(b);
    return this;
  }
  bytes(field: number, b: Buffer | Uint8Array): this {
    this.tag(field, WT_LEN);
    this.varint(b.length);
    this.chunks.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }
  msg(field: number, m: PB): this {
    return this.bytes(field, m.done());
  }
  done(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

export function tensor(name: string, dims: number[], data: Float32Array): PB {
  const t = new PB();
  for (const d of dims) t.int(1, d);
  t.int(2, FLOAT);
  t.str(8, name);
  t.bytes(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return t;
}

export function valueInfo(name: string, dims: (number | string)[]): PB {
  const shape = new PB();
  for (const d of dims) {
    const dim = new PB();
    if (typeof d === 'number' && d >= 0) dim.int(1, d);
    else dim.str(2, typeof d === 'string' ? d : 'N');
    shape.msg(1, dim);
  }
  const tt = new PB().int(1, FLOAT).msg(2, shape);
  const type = new PB().msg(1, tt);
  return new PB().str(1, name).msg(2, type);
}

type Attr = { name: string; int?: number; float?: number; ints?: number[] };

export function node(op: string, inputs: string[], outputs: string[], name: string, attrs: Attr[] = []): PB {
  const n = new PB();
  for (const i of inputs) n.str(1, i);
  for (const o of outputs) n.str(2, o);
  n.str(3, name);
  n.str(4, op);
  for (const a of attrs) {
    const ap = new PB().str(1, a.name);
    if (a.int !== undefined) ap.int(3, a.int).int(20, ATTR_INT);
    else if (a.float !== undefined) ap.float(2, a.float).int(20, ATTR_FLOAT);
    else if (a.ints) {
      for (const v of a.ints) ap.int(8, v);
      ap.int(20, ATTR_INTS);
    }
    n.msg(5, ap);
  }
  return n;
}

/** One dense layer: y = x W + b with W stored row-major as [inDim][outDim]. */
export interface DenseLayer {
  inDim: number;
  outDim: number;
  W: Float32Array;
  b: Float32Array;
}

export interface DenseModelSpec {
  layers: DenseLayer[];
  /** append Softmax so the output holds probabilities (default true) */
  softmax?: boolean;
  inputName?: string;
  outputName?: string;
  /** also expose the last hidden activation as a second output named "features" (needs a hidden layer) */
  featuresOutput?: boolean;
  /** stored as ONNX metadata_props (labels, preprocessing, trainer info ...) */
  metadata?: Record<string, string>;
  producer?: string;
}

/** Name of the optional second output: the last hidden layer's activations (penultimate features). */
export const FEATURES_OUTPUT = 'features';

/**
 * Gemm [-> Relu -> Gemm ...] [-> Softmax] nodes and their weights from tensor `input` to
 * `outputName`; hidden activations are named hidden0, hidden1, ..., the last one `lastHidden`
 * when given (the "features" output)
 */
export function appendDense(graph: PB, layers: DenseLayer[], input: string, outputName: string, softmax: boolean, lastHidden?: string): void {
  let cur = input;
  layers.forEach((l, i) => {
    const w = `W${i}`;
    const b = `B${i}`;
    const last = i === layers.length - 1;
    const gemmOut = last && !softmax ? outputName : `gemm${i}`;
    graph.msg(1, node('Gemm', [cur, w, b], [gemmOut], `gemm_${i}`));
    graph.msg(5, tensor(w, [l.inDim, l.outDim], l.W));
    graph.msg(5, tensor(b, [l.outDim], l.b));
    if (!last) {
      const reluOut = lastHidden && i === layers.length - 2 ? lastHidden : `hidden${i}`;
      graph.msg(1, node('Relu', [gemmOut], [reluOut], `relu_${i}`));
      cur = reluOut;
    } else if (softmax) {
      graph.msg(1, node('Softmax', [gemmOut], [outputName], 'softmax', [{ name: 'axis', int: -1 }]));
    }
  });
}

/** The ModelProto around a graph: IR 8, default-domain opset 13, metadata_props. */
export function modelProto(graph: PB, producer: string, metadata: Record<string, string>): Buffer {
  const model = new PB();
  model.int(1, 8); // ir_version
  model.str(2, producer);
  model.str(3, '1');
  model.msg(7, graph);
  model.msg(8, new PB().str(1, '').int(2, 13)); // opset_import: default domain, opset 13
  for (const [k, v] of Object.entries(metadata)) model.msg(14, new PB().str(1, k).str(2, v));
  return model.done();
}

/** Serialise a dense network as an ONNX model (bytes of a .onnx file). */
export function writeDenseOnnx(spec: DenseModelSpec): Buffer {
  const { layers } = spec;
  if (layers.length === 0) throw new Error('writeDenseOnnx: no layers');
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i];
    if (l.W.length !== l.inDim * l.outDim || l.b.length !== l.outDim) throw new Error(`writeDenseOnnx: layer ${i} has wrong weight sizes`);
    if (i > 0 && layers[i - 1].outDim !== l.inDim) throw new Error(`writeDenseOnnx: layer ${i} input ${l.inDim} != previous output ${layers[i - 1].outDim}`);
  }
  const inputName = spec.inputName ?? 'input';
  const outputName = spec.outputName ?? (spec.softmax === false ? 'logits' : 'probabilities');
  const graph = new PB();
  const features = spec.featuresOutput && layers.length > 1 ? FEATURES_OUTPUT : undefined;
  appendDense(graph, layers, inputName, outputName, spec.softmax !== false, features);
  graph.str(2, 'sedna_ll_dense');
  graph.msg(11, valueInfo(inputName, ['N', layers[0].inDim]));
  graph.msg(12, valueInfo(outputName, ['N', layers[layers.length - 1].outDim]));
  if (spec.featuresOutput && layers.length > 1) {
    graph.msg(12, valueInfo(FEATURES_OUTPUT, ['N', layers[layers.length - 2].outDim]));
  }
  return modelProto(graph, spec.producer ?? 'sedna-ll', spec.metadata ?? {});
}
