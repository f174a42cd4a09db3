// Reads dense ONNX models (Gemm [-> Relu -> Gemm ...] [-> Softmax]) back into weights, so the
// KB's published models can seed transfer learning and be scored by the gate without a runtime
// session. Only that graph shape is understood; anything else returns null and the caller falls
// back to onnxruntime (evaluation) or a fresh start (transfer).
import type { DenseLayer } from './writer.js';

/** The dense chain read back: the same shape as learn/dense.ts's DenseNet (structural type). */
export interface DenseNet {
  layers: DenseLayer[];
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
      if (shift > 63) throw new Error('varint too long');
    }
  }
  /** next field: [number, wire type, value] (value: number for varint/fixed, Buffer for length-delimited) */
  field(): [number, number, number | Buffer] {
    const tag = this.varint();
    const f = Math.floor(tag / 8);
    const wt = tag & 7;
    switch (wt) {
      case 0:
        return [f, wt, this.varint()];
      case 1: {
        const v = this.buf.readDoubleLE(this.pos);
        this.pos += 8;
        return [f, wt, v];
      }
      case 2: {
        const len = this.varint();
        if (this.pos + len > this.buf.length) throw new Error('truncated field');
        const v = this.buf.subarray(this.pos, this.pos + len);
        this.pos += len;
        return [f, wt, v];
      }
      case 5: {
        const v = this.buf.readFloatLE(this.pos);
        this.pos += 4;
        return [f, wt, v];
      }
      default:
        throw new Error(`unsupported wire type ${wt}`);
    }
  }
}

function fields(buf: Buffer): [number, number, number | Buffer][] {
  const r = new Reader(buf);
  const out: [number, number, number | Buffer][] = [];
  while (!r.done) out.push(r.field());
  return out;
}

const str = (v: number | Buffer) => (Buffer.isBuffer(v) ? v.toString('utf8') : '');

export interface Tensor {
  dims: number[];
  data: Float32Array;
}

function parseTensor(buf: Buffer): [string, Tensor] | null {
  let name = '';
  const dims: number[] = [];
  let type = 0;
  let raw: Buffer | null = null;
  const floats: number[] = [];
  for (const [f, wt, v] of fields(buf)) {
    if (f === 1 && wt === 0) dims.push(v as number);
    else if (f === 1 && wt === 2) {
      const r = new Reader(v as Buffer);
      while (!r.done) dims.push(r.varint());
    } else if (f === 2) type = v as number;
    else if (f === 8) name = str(v);
    else if (f === 9) raw = v as Buffer;
    else if (f === 4 && wt === 2) {
      const b = v as Buffer;
      for (let i = 0; i + 4 <= b.length; i += 4) floats.push(b.readFloatLE(i));
    } else if (f === 4 && wt === 5) floats.push(v as number);
  }
  if (type !== 1) return null; // float32 only
  let data: Float32Array;
  if (raw) {
    data = new Float32Array(raw.length / 4);
    for (let i = 0; i < data.length; i++) data[i] = raw.readFloatLE(i * 4);
  } else data = Float32Array.from(floats);
  return [name, { dims, data }];
}

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, number>;
  /** INTS attributes (kernel_shape, pads, strides ...) */
  ints: Record<string, number[]>;
}

function parseNode(buf: Buffer): Node {
  const n: Node = { op: '', inputs: [], outputs: [], attrs: {}, ints: {} };
  for (const [f, , v] of fields(buf)) {
    if (f === 1) n.inputs.push(str(v));
    else if (f === 2) n.outputs.push(str(v));
    else if (f === 4) n.op = str(v);
    else if (f === 5) {
      let name = '';
      let val = NaN;
      const ints: number[] = [];
      for (const [af, wt, av] of fields(v as Buffer)) {
        if (af === 1) name = str(av);
        else if (af === 2 || af === 3) val = av as number;
        else if (af === 8 && wt === 0) ints.push(av as number);
        else if (af === 8 && wt === 2) {
          const r = new Reader(av as Buffer);
          while (!r.done) ints.push(r.varint());
        }
      }
      n.attrs[name] = val;
      if (ints.length) n.ints[name] = ints;
    }
  }
  return n;
}

export interface ReadModel {
  net: DenseNet;
  softmax: boolean;
  inputName: string;
  outputName: string;
  /** the graph output holding the last hidden layer's activations, if the model declares one */
  featuresOutput: string | null;
  metadata: Record<string, string>;
}

export interface ParsedGraph {
  nodes: Node[];
  inits: Map<string, Tensor>;
  /** the graph input that is not an initializer */
  inputName: string;
  /** the input's declared dims (-1 for symbolic or missing ones), [] when it declares none */
  inputDims: number[];
  outputs: string[];
  metadata: Record<string, string>;
}

/** Dims of a TypeProto's tensor shape: dim_value, or -1 for a dim_param / unknown dim. */
function tensorDims(typeProto: Buffer): number[] {
  const dims: number[] = [];
  for (const [f, , tt] of fields(typeProto)) {
    if (f !== 1) continue; // tensor_type
    for (const [tf, , shape] of fields(tt as Buffer)) {
      if (tf !== 2) continue; // shape
      for (const [sf, , dim] of fields(shape as Buffer)) {
        if (sf !== 1) continue;
        let d = -1;
        for (const [df, wt, dv] of fields(dim as Buffer)) if (df === 1 && wt === 0) d = dv as number;
        dims.push(d);
      }
    }
  }
  return dims;
}

/** The parts of an ONNX model the readers use; null when it is not parseable or has non-float32 weights. */
export function parseGraph(bytes: Buffer): ParsedGraph | null {
  try {
    let graph: Buffer | null = null;
    const metadata: Record<string, string> = {};
    for (const [f, , v] of fields(bytes)) {
      if (f === 7) graph = v as Buffer;
      else if (f === 14) {
        let k = '';
        let val = '';
        for (const [mf, , mv] of fields(v as Buffer)) {
          if (mf === 1) k = str(mv);
          else if (mf === 2) val = str(mv);
        }
        metadata[k] = val;
      }
    }
    if (!graph) return null;
    const nodes: Node[] = [];
    const inits = new Map<string, Tensor>();
    const inputs: string[] = [];
    const outputs: string[] = [];
    const dimsOf = new Map<string, number[]>();
    for (const [f, , v] of fields(graph)) {
      if (f === 1) nodes.push(parseNode(v as Buffer));
      else if (f === 5) {
        const t = parseTensor(v as Buffer);
        if (!t) return null;
        inits.set(t[0], t[1]);
      } else if (f === 11 || f === 12) {
        let name = '';
        let dims: number[] = [];
        for (const [vf, , vv] of fields(v as Buffer)) {
          if (vf === 1) name = str(vv);
          else if (vf === 2) dims = tensorDims(vv as Buffer);
        }
        (f === 11 ? inputs : outputs).push(name);
        if (f === 11) dimsOf.set(name, dims);
      }
    }
    const inputName = inputs.find((i) => !inits.has(i));
    if (!inputName || outputs.length === 0) return null;
    return { nodes, inits, inputName, inputDims: dimsOf.get(inputName) ?? [], outputs, metadata };
  } catch {
    return null;
  }
}

/** Parse a dense ONNX model; null when the graph is not a Gemm/Relu chain this reader knows. */
export function readDenseOnnx(bytes: Buffer): ReadModel | null {
  const g = parseGraph(bytes);
  if (!g) return null;
  const r = readDenseChain(g, g.inputName);
  if (!r || !g.outputs.includes(r.output)) return null;
  // the last hidden activation, when the graph also outputs it, is the "features" output
  const featuresOutput = r.net.layers.length > 1 && r.lastHidden !== null && g.outputs.includes(r.lastHidden) ? r.lastHidden : null;
  return { net: r.net, softmax: r.softmax, inputName: g.inputName, outputName: r.output, featuresOutput, metadata: g.metadata };
}

/** The Gemm [-> Relu -> Gemm ...] [-> Softmax] chain that starts at tensor `from`, or null. */
export function readDenseChain(g: ParsedGraph, from: string): { net: DenseNet; softmax: boolean; output: string; lastHidden: string | null } | null {
  const { nodes, inits } = g;
  const layers: DenseLayer[] = [];
  let cur = from;
  let softmax = false;
  let pendingRelu = false;
  let lastHidden: string | null = null;
  for (;;) {
    const next = nodes.find((n) => n.inputs[0] === cur);
    if (!next) break;
    if (next.op === 'Gemm') {
      if (layers.length > 0 && !pendingRelu) return null; // two Gemms without Relu: not our shape
      pendingRelu = false;
      const W = inits.get(next.inputs[1]);
      const B = next.inputs[2] ? inits.get(next.inputs[2]) : undefined;
      if (!W || W.dims.length !== 2 || (next.attrs.transA ?? 0) !== 0) return null;
      const alpha = next.attrs.alpha ?? 1;
      const beta = next.attrs.beta ?? 1;
      const transB = (next.attrs.transB ?? 0) === 1;
      const inDim = transB ? W.dims[1] : W.dims[0];
      const outDim = transB ? W.dims[0] : W.dims[1];
      const w = new Float32Array(inDim * outDim);
      for (let p = 0; p < inDim; p++) for (let j = 0; j < outDim; j++) w[p * outDim + j] = alpha * (transB ? W.data[j * inDim + p] : W.data[p * outDim + j]);
      const b = new Float32Array(outDim);
      if (B) {
        if (B.data.length !== outDim) return null;
        for (let j = 0; j < outDim; j++) b[j] = beta * B.data[j];
      }
      layers.push({ inDim, outDim, W: w, b });
    } else if (next.op === 'Relu') {
      if (layers.length === 0 || pendingRelu) return null;
      pendingRelu = true;
      lastHidden = next.outputs[0];
    } else if (next.op === 'Softmax') {
      softmax = true;
      cur = next.outputs[0];
      break;
    } else return null;
    cur = next.outputs[0];
  }
  if (layers.length === 0 || pendingRelu) return null;
  return { net: { layers }, softmax, output: cur, lastHidden };
}
