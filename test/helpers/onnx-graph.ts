// A minimal protobuf writer for hand-built ONNX graphs in tests: models no well-behaved
// exporter writes (two inputs, absurd declared shapes).
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n > 127) (out.push((n & 127) | 128), (n = Math.floor(n / 128)));
  out.push(n);
  return out;
};
export const field = (no: number, bytes: Buffer | string): Buffer => {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return Buffer.concat([Buffer.from([(no << 3) | 2, ...varint(b.length)]), b]);
};
export const int = (no: number, v: number): Buffer => Buffer.from([(no << 3) | 0, ...varint(v)]);
const dim = (d: number | string) => field(1, typeof d === 'number' ? int(1, d) : field(2, d));
/** ValueInfoProto of a float32 tensor with these dims (numbers fixed, strings symbolic) */
export const valueInfo = (name: string, dims: (number | string)[]) =>
  Buffer.concat([field(1, name), field(2, field(1, Buffer.concat([int(1, 1 /* FLOAT */), field(2, Buffer.concat(dims.map(dim)))])))]);

/** ModelProto (IR 8, opset 13) around one graph's fields. */
export const model = (graph: Buffer[]): Buffer => Buffer.concat([int(1, 8), field(8, Buffer.concat([field(1, ''), int(2, 13)])), field(7, Buffer.concat(graph))]);

/** y = Relu(x) with x declared as `dims`: a few hundred bytes, any declared input size. */
export function reluModel(dims: (number | string)[]): Buffer {
  const node = Buffer.concat([field(1, 'x'), field(2, 'y'), field(3, 'relu'), field(4, 'Relu')]);
  return model([field(1, node), field(2, 'relu'), field(11, valueInfo('x', dims)), field(12, valueInfo('y', dims))]);
}
