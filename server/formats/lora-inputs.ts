/**
 * Turns a PEFT LoRA adapter (adapter_config.json and adapter_model.safetensors bytes) into
 * the LoRA inputs of a shared-base ONNX graph: `lora.{layer}.{module}.A` [r, in_features]
 * and `lora.{layer}.{module}.B` [out_features, r], float32. The scale (alpha / r, or
 * alpha / sqrt(r) with rsLoRA) is folded into B.
 *
 * A graph with a dynamic rank dimension takes each factor at the adapter's own rank r, and
 * F32 A factors are then views of the file's bytes, not copies. A graph exported with a fixed
 * rank r_max gets padded factors: a module of rank r fills the first r rows of A and the first
 * r columns of B, and the rest stays zero, which adds nothing.
 */
import { alphaFor, rankFor, type LoraConfig } from './peft-config';
import { parseHeader, readHeaderLength, type TensorInfo } from './safetensors';

/** LoRA input shapes of a graph, from its manifest. */
export interface LoraGraphShape {
  numLayers: number;
  // The highest rank accepted: the graph's fixed rank, or the exporter's bound when it is dynamic.
  maxRank: number;
  // True when the graph's rank dimensions are symbolic, so factors need no padding.
  dynamicRank: boolean;
  // Module names in the graph, such as q_proj; each has [in_features, out_features].
  modules: Record<string, { inFeatures: number; outFeatures: number }>;
}

export interface LoraTensor {
  data: Float32Array;
  dims: [number, number];
}

export interface LoraInputs {
  // Graph input name to float32 data; modules the adapter does not target are absent (zeros).
  tensors: Map<string, LoraTensor>;
  // Bytes that `tensors` keep alive (views count the whole file once), for the adapter cache's cap.
  bytes: number;
  modules: number;
  maxRankUsed: number;
}

export class LoraInputsError extends Error {
  override name = 'LoraInputsError';
}

// base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight and the like.
const LORA_TENSOR = /^(?:.*\.)?layers\.(\d+)\.(?:[A-Za-z_]+)\.([A-Za-z0-9_]+)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$/;

/**
 * Rejects adapter options the graph cannot express: DoRA rescales the merged weight per
 * output row, lora_bias and modules_to_save replace or add base weights, and token adapters
 * change embedding rows. None of these is a W x + B (A x) term.
 */
export function unsupportedOptions(config: LoraConfig): string[] {
  const problems: string[] = [];
  if (config.useDora) problems.push('DoRA (use_dora: true) rescales each weight row, which the shared graph cannot express; try the adapter through PEFT instead');
  if (config.loraBias) problems.push('lora_bias: true adds a bias to lora_B, which the shared graph has no input for');
  if (config.bias !== 'none') problems.push(`bias: "${config.bias}" trains base-layer biases, which the shared graph has no input for`);
  if (config.modulesToSave.length > 0) problems.push(`modules_to_save (${config.modulesToSave.join(', ')}) replaces whole base modules, which the shared graph cannot load`);
  if (Object.keys(config.trainableTokenIndices).length > 0) problems.push('trainable_token_indices changes embedding rows, which the shared graph cannot load');
  return problems;
}

// safetensors stores little-endian values, which typed arrays read as they are on such hosts.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Returns a tensor's F32 bytes as a Float32Array over the same memory, or null when a view is
 * impossible (another dtype, a big-endian host, or a start that is not 4-byte aligned).
 */
function viewF32(bytes: Uint8Array, tensor: TensorInfo): Float32Array | null {
  if (tensor.dtype !== 'F32' || !LITTLE_ENDIAN || bytes.byteOffset % 4 !== 0) return null;
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Decodes a tensor's F32, F16 or BF16 bytes into the first elements of `target`. */
function decodeInto(target: Float32Array, bytes: Uint8Array, tensor: TensorInfo): void {
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (tensor.dtype === 'F32' && LITTLE_ENDIAN) {
    // One byte copy into the aligned target; the file's offsets need not be 4-aligned.
    new Uint8Array(target.buffer, target.byteOffset, count * 4).set(bytes.subarray(0, count * 4));
  } else if (tensor.dtype === 'F32') {
    for (let i = 0; i < count; i++) target[i] = view.getFloat32(i * 4, true);
  } else if (tensor.dtype === 'BF16') {
    const word = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < count; i++) {
      word.setUint32(0, view.getUint16(i * 2, true) << 16);
      target[i] = word.getFloat32(0);
    }
  } else if (tensor.dtype === 'F16') {
    for (let i = 0; i < count; i++) target[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    throw new LoraInputsError(`tensor ${tensor.name} has dtype ${tensor.dtype}; LoRA weights must be F32, F16 or BF16`);
  }
}

function halfToFloat(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/**
 * Builds the graph inputs for one adapter. `file` is the whole adapter_model.safetensors;
 * every size and offset in it is checked by the project's safetensors parser before use.
 */
export function loraInputsFromAdapter(config: LoraConfig, file: Uint8Array, graph: LoraGraphShape): LoraInputs {
  const problems = unsupportedOptions(config);
  if (problems.length > 0) throw new LoraInputsError(`this adapter cannot run in the playground: ${problems.join('; ')}`);

  const headerLength = readHeaderLength(file.subarray(0, 8), file.byteLength);
  const header = parseHeader(file.subarray(8, 8 + headerLength), file.byteLength);
  const dataStart = 8 + headerLength;

  const pairs = new Map<string, { layer: number; module: string; A?: TensorInfo; B?: TensorInfo }>();
  for (const tensor of header.tensors) {
    if (tensor.name.includes('lora_magnitude_vector')) throw new LoraInputsError(`tensor ${tensor.name} is a DoRA magnitude; DoRA adapters cannot run in the playground`);
    if (tensor.name.includes('lora_embedding_')) throw new LoraInputsError(`tensor ${tensor.name} adapts an embedding; the playground graph takes LoRA on the linear layers ${Object.keys(graph.modules).join(', ')} only`);
    const match = LORA_TENSOR.exec(tensor.name);
    if (!match) throw new LoraInputsError(`tensor ${tensor.name} is not a LoRA factor of a decoder layer; the playground graph takes LoRA on ${Object.keys(graph.modules).join(', ')} only`);
    const [, layerText, module, factor] = match;
    const layer = Number(layerText);
    if (!Object.hasOwn(graph.modules, module!)) {
      throw new LoraInputsError(`tensor ${tensor.name} targets module ${module}, which the playground graph has no LoRA input for; supported modules: ${Object.keys(graph.modules).join(', ')}`);
    }
    if (layer >= graph.numLayers) throw new LoraInputsError(`tensor ${tensor.name} names layer ${layer}, but the base model has ${graph.numLayers} layers`);
    const key = `${layer}.${module}`;
    const pair = pairs.get(key) ?? { layer, module: module! };
    pair[factor as 'A' | 'B'] = tensor;
    pairs.set(key, pair);
  }

  const tensors = new Map<string, LoraTensor>();
  let bytes = 0;
  let viewsFile = false;
  let maxRankUsed = 0;
  for (const [key, pair] of pairs) {
    if (!pair.A || !pair.B) throw new LoraInputsError(`layer ${pair.layer} ${pair.module} has lora_${pair.A ? 'A' : 'B'} but no lora_${pair.A ? 'B' : 'A'}; save the adapter again with PEFT`);
    const { inFeatures, outFeatures } = graph.modules[pair.module]!;
    const rank = pair.A.shape[0]!;
    if (pair.A.shape.length !== 2 || pair.A.shape[1] !== inFeatures || pair.B.shape.length !== 2 || pair.B.shape[0] !== outFeatures || pair.B.shape[1] !== rank) {
      throw new LoraInputsError(`layer ${pair.layer} ${pair.module}: lora_A [${pair.A.shape.join(', ')}] and lora_B [${pair.B.shape.join(', ')}] do not fit [r, ${inFeatures}] and [${outFeatures}, r]; the adapter was trained for another base model`);
    }
    if (rank > graph.maxRank) {
      throw new LoraInputsError(`layer ${pair.layer} ${pair.module} has rank ${rank}, above the playground graph's maximum rank ${graph.maxRank}; export the base graph with a larger --max-rank or use a lower-rank adapter`);
    }
    maxRankUsed = Math.max(maxRankUsed, rank);

    // rank_pattern and alpha_pattern match module names as PEFT writes them.
    const moduleName = pair.A.name.replace(/\.lora_A(?:\.[A-Za-z0-9_]+)?\.weight$/, '').replace(/^base_model\.model\./, '');
    const alpha = alphaFor(config, moduleName);
    const configuredRank = rankFor(config, moduleName);
    const scale = config.useRslora ? alpha / Math.sqrt(configuredRank) : alpha / configuredRank;

    const bytesA = file.subarray(dataStart + pair.A.begin, dataStart + pair.A.end);
    const bytesB = file.subarray(dataStart + pair.B.begin, dataStart + pair.B.end);
    if (graph.dynamicRank) {
      let a = viewF32(bytesA, pair.A);
      if (a) viewsFile = true;
      else {
        a = new Float32Array(rank * inFeatures);
        decodeInto(a, bytesA, pair.A);
        bytes += a.byteLength;
      }
      // B is always a copy, because the scale is folded into it and the file stays unchanged.
      // From an F32 view, scaling while copying reads and writes each value once.
      const b = new Float32Array(outFeatures * rank);
      const sourceB = viewF32(bytesB, pair.B);
      if (sourceB) {
        for (let i = 0; i < b.length; i++) b[i] = sourceB[i]! * scale;
      } else {
        decodeInto(b, bytesB, pair.B);
        for (let i = 0; i < b.length; i++) b[i]! *= scale;
      }
      tensors.set(`lora.${key}.A`, { data: a, dims: [rank, inFeatures] });
      tensors.set(`lora.${key}.B`, { data: b, dims: [outFeatures, rank] });
      bytes += b.byteLength;
      continue;
    }

    // A [r, in] is the first r rows of the padded [r_max, in], so it is decoded in place.
    const paddedA = new Float32Array(graph.maxRank * inFeatures);
    decodeInto(paddedA, bytesA, pair.A);
    const b = new Float32Array(outFeatures * rank);
    decodeInto(b, bytesB, pair.B);
    const paddedB = new Float32Array(outFeatures * graph.maxRank);
    for (let row = 0; row < outFeatures; row++) {
      for (let column = 0; column < rank; column++) paddedB[row * graph.maxRank + column] = b[row * rank + column]! * scale;
    }
    tensors.set(`lora.${key}.A`, { data: paddedA, dims: [graph.maxRank, inFeatures] });
    tensors.set(`lora.${key}.B`, { data: paddedB, dims: [outFeatures, graph.maxRank] });
    bytes += paddedA.byteLength + paddedB.byteLength;
  }
  if (pairs.size === 0) throw new LoraInputsError('adapter_model.safetensors contains no LoRA factors (lora_A / lora_B weights); save the adapter with PEFT save_pretrained');
  if (viewsFile) bytes += file.byteLength;
  return { tensors, bytes, modules: pairs.size, maxRankUsed };
}
