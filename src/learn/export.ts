// Trained weights -> ONNX (opset 13, Gemm/Relu/Softmax via writeDenseOnnx) with what the edge
// and the KB need to know in the metadata: labels, preprocessing, architecture.
// A net with a hidden layer also outputs its last hidden activations ("features", second
// output) for the feature-space unseen detector; the edge fetches it only when the index has
// the task's feature statistics, and models without it keep working.
import { FEATURES_OUTPUT, writeDenseOnnx } from '../onnx/writer.js';
import type { Preprocessing, TensorSpec } from '../format/index-manifest.js';
import type { DenseNet } from './dense.js';
import type { CnnNet } from './cnn.js';
import { writeCnnOnnx } from './cnn-onnx.js';

export interface ExportInfo {
  labels: string[];
  preprocessing: Preprocessing;
  arch: string;
}

export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'probabilities';

// Only what the weights' meaning depends on: the same weights export to the same bytes (and
// sha256) whichever task, seed, parent or trainer settings produced them, so an unchanged model
// is never published (or downloaded) again. Provenance lives in the task record (extra.trainer,
// parent) and the signed index.
function metadata(info: ExportInfo): Record<string, string> {
  return { labels: JSON.stringify(info.labels), preprocessing: JSON.stringify(info.preprocessing), arch: info.arch };
}

export function exportOnnx(net: DenseNet, info: ExportInfo): Buffer {
  return writeDenseOnnx({ layers: net.layers, softmax: true, featuresOutput: net.layers.length > 1, inputName: INPUT_NAME, outputName: OUTPUT_NAME, producer: 'sedna-ll-learn', metadata: metadata(info) });
}

/** A CNN as ONNX: input [N, C, H, W], output [N, classes] probabilities (cnn-onnx.ts). */
export function exportCnnOnnx(net: CnnNet, info: ExportInfo): Buffer {
  return writeCnnOnnx(net, { inputName: INPUT_NAME, outputName: OUTPUT_NAME, producer: 'sedna-ll-learn', metadata: metadata(info) });
}

/** Input/output tensor specs of an exported CNN. */
export function cnnIoSpecs(net: CnnNet): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  const L = net.head.layers;
  return {
    inputs: [{ name: INPUT_NAME, shape: ['N', ...net.shape], dtype: 'float32' }],
    outputs: [{ name: OUTPUT_NAME, shape: ['N', L[L.length - 1].outDim], dtype: 'float32' }],
  };
}

/** Input/output tensor specs of an exported model (for the index's model entry). */
export function ioSpecs(net: DenseNet): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  return {
    inputs: [{ name: INPUT_NAME, shape: ['N', net.layers[0].inDim], dtype: 'float32' }],
    outputs: [
      { name: OUTPUT_NAME, shape: ['N', net.layers[net.layers.length - 1].outDim], dtype: 'float32' },
      ...(net.layers.length > 1 ? [{ name: FEATURES_OUTPUT, shape: ['N', net.layers[net.layers.length - 2].outDim], dtype: 'float32' as const }] : []),
    ],
  };
}
