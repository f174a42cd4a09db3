// CNN <-> ONNX (opset 13): Conv(3x3, pads 1) -> Relu -> MaxPool(2x2, stride 2) per block, Flatten,
// then the dense head as writeDenseOnnx writes it (Gemm, Relu, ..., Gemm, Softmax). The input is
// [N, C, H, W] float32, so the edge feeds images (preprocessing layout NCHW) or flat vectors of
// C*H*W values unchanged. The reader understands exactly this graph (for transfer and scoring
// without a runtime session); anything else returns null.
import { appendDense, modelProto, node, PB, tensor, valueInfo } from '../onnx/writer.js';
import type { CnnNet, ConvLayer } from './cnn.js';
import { parseGraph, readDenseChain } from '../onnx/reader.js';

export function writeCnnOnnx(net: CnnNet, spec: { inputName: string; outputName: string; producer: string; metadata: Record<string, string> }): Buffer {
  const graph = new PB();
  let cur = spec.inputName;
  net.convs.forEach((c, l) => {
    graph.msg(1, node('Conv', [cur, `convW${l}`, `convB${l}`], [`conv${l}`], `conv_${l}`, [
      { name: 'kernel_shape', ints: [3, 3] },
      { name: 'pads', ints: [1, 1, 1, 1] },
      { name: 'strides', ints: [1, 1] },
    ]));
    graph.msg(5, tensor(`convW${l}`, [c.cout, c.cin, 3, 3], c.W));
    graph.msg(5, tensor(`convB${l}`, [c.cout], c.b));
    graph.msg(1, node('Relu', [`conv${l}`], [`crelu${l}`], `crelu_${l}`));
    graph.msg(1, node('MaxPool', [`crelu${l}`], [`pool${l}`], `pool_${l}`, [
      { name: 'kernel_shape', ints: [2, 2] },
      { name: 'strides', ints: [2, 2] },
    ]));
    cur = `pool${l}`;
  });
  graph.msg(1, node('Flatten', [cur], ['flat'], 'flatten', [{ name: 'axis', int: 1 }]));
  appendDense(graph, net.head.layers, 'flat', spec.outputName, true);
  graph.str(2, 'sedna_ll_cnn');
  graph.msg(11, valueInfo(spec.inputName, ['N', ...net.shape]));
  const L = net.head.layers;
  graph.msg(12, valueInfo(spec.outputName, ['N', L[L.length - 1].outDim]));
  return modelProto(graph, spec.producer, spec.metadata);
}

export interface ReadCnn {
  net: CnnNet;
  inputName: string;
  outputName: string;
  metadata: Record<string, string>;
}

const same = (a: number[] | undefined, b: number[]) => !!a && a.length === b.length && a.every((v, i) => v === b[i]);

/** Parse a CNN written by writeCnnOnnx (or the same graph from elsewhere); null for anything else. */
export function readCnnOnnx(bytes: Buffer): ReadCnn | null {
  const g = parseGraph(bytes);
  if (!g) return null;
  const d = g.inputDims;
  if (d.length !== 4 || d.slice(1).some((x) => !(x > 0))) return null;
  const shape: [number, number, number] = [d[1], d[2], d[3]];
  const convs: ConvLayer[] = [];
  let cur = g.inputName;
  let cin = shape[0];
  const next = (op: string) => {
    const n = g.nodes.find((x) => x.inputs[0] === cur);
    return n && n.op === op ? n : null;
  };
  for (;;) {
    const conv = next('Conv');
    if (!conv) break;
    const W = g.inits.get(conv.inputs[1]);
    const B = conv.inputs[2] ? g.inits.get(conv.inputs[2]) : undefined;
    if (!W || !same(W.dims, [W.dims[0], cin, 3, 3]) || !same(conv.ints.pads ?? [0, 0, 0, 0], [1, 1, 1, 1]) || !same(conv.ints.strides ?? [1, 1], [1, 1])) return null;
    if ((conv.ints.dilations && !same(conv.ints.dilations, [1, 1])) || (conv.attrs.group ?? 1) !== 1) return null;
    const cout = W.dims[0];
    cur = conv.outputs[0];
    const relu = next('Relu');
    if (!relu) return null;
    cur = relu.outputs[0];
    const pool = next('MaxPool');
    if (!pool || !same(pool.ints.kernel_shape, [2, 2]) || !same(pool.ints.strides, [2, 2]) || (pool.ints.pads && pool.ints.pads.some((p) => p !== 0)) || (pool.attrs.ceil_mode ?? 0) !== 0) return null;
    cur = pool.outputs[0];
    convs.push({ cin, cout, W: W.data, b: B && B.data.length === cout ? B.data : new Float32Array(cout) });
    cin = cout;
  }
  const flat = next('Flatten');
  if (convs.length === 0 || !flat || (flat.attrs.axis ?? 1) !== 1) return null;
  const head = readDenseChain(g, flat.outputs[0]);
  if (!head || !head.softmax || !g.outputs.includes(head.output)) return null;
  const net: CnnNet = { shape, convs, head: head.net };
  let h = shape[1];
  let w = shape[2];
  for (let l = 0; l < convs.length; l++) (h >>= 1), (w >>= 1);
  if (head.net.layers[0].inDim !== cin * h * w) return null;
  return { net, inputName: g.inputName, outputName: head.output, metadata: g.metadata };
}

