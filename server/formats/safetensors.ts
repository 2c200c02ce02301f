/**
 * Parser for the safetensors header: an 8-byte little-endian header length, a JSON
 * object mapping tensor names to {dtype, shape, data_offsets}, then the data section.
 * Every size and offset read from the file is checked before use. The rules follow the
 * reference reader (huggingface/safetensors, safetensors/src/tensor.rs), which PEFT,
 * vLLM and LoRAX all load adapters with, so a file that passes here also loads there.
 */

/**
 * Headers above this size are rejected before any allocation. The reference reader's
 * MAX_HEADER_SIZE is the same 100,000,000 bytes; real adapters stay far below it.
 */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every dtype the reference reader knows (safetensors 0.6 Dtype enum). */
export const DTYPE_BITS: Record<string, number> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  headerLength: number;
  tensors: TensorInfo[];
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const SAVE_AGAIN = 'save the adapter again with `model.save_pretrained(dir)` (PEFT writes safetensors by default)';

/**
 * Names the format of a file that is not safetensors but starts like a PyTorch checkpoint:
 * a zip archive (torch.save since PyTorch 1.6) or a bare pickle (protocol 2 to 5). Only
 * consulted once the header length is already known to be invalid, because a valid
 * length can start with the same bytes.
 */
function pickleHint(prefix: Uint8Array): string {
  const zip = prefix[0] === 0x50 && prefix[1] === 0x4b && prefix[2] === 0x03 && prefix[3] === 0x04;
  const pickle = prefix[0] === 0x80 && prefix[1]! >= 2 && prefix[1]! <= 5;
  if (!zip && !pickle) return '';
  return '; the file starts like a PyTorch pickle checkpoint renamed to .safetensors, which is never loaded here because unpickling can run arbitrary code: '
    + 'convert it with `PeftModel.from_pretrained(base, dir).save_pretrained(out, safe_serialization=True)`';
}

/** Reads the header length from the first 8 bytes and checks it against the file size. */
export function readHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize === 0) {
    throw new SafetensorsError(`file is empty (0 bytes), so the save or the copy was cut short; a safetensors file starts with an 8-byte header length; ${SAVE_AGAIN}`);
  }
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(`file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length; ${SAVE_AGAIN}`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`header length ${length} exceeds the limit of ${MAX_HEADER_BYTES} bytes${pickleHint(prefix)}`);
  }
  if (length + 8n > BigInt(fileSize)) {
    throw new SafetensorsError(`header length ${length} runs past the end of the ${fileSize}-byte file, so the file is truncated or not safetensors${pickleHint(prefix)}`);
  }
  return Number(length);
}

/**
 * Parses and checks the header JSON. `headerBytes` are the bytes after the length prefix,
 * `fileSize` the total file size, so data offsets can be checked against the data section.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = headerBytes.length;
  let raw: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    raw = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError('header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}');
  }
  const duplicate = firstDuplicateTopLevelKey(text);
  if (duplicate !== null) throw new SafetensorsError(`tensor ${duplicate} appears twice in the header`);

  const dataSize = fileSize - 8 - headerLength;
  const tensors: TensorInfo[] = [];
  let metadata: Record<string, string> = {};

  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value);
      continue;
    }
    tensors.push(parseTensor(name, value, dataSize));
  }

  checkLayout(tensors, dataSize);
  return { headerLength, tensors, metadata };
}

function parseMetadata(value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError('__metadata__ must be an object of string values');
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw new SafetensorsError(`__metadata__.${key} must be a string, got ${typeof item}`);
  }
  return value as Record<string, string>;
}

function parseTensor(name: string, value: unknown, dataSize: number): TensorInfo {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`tensor ${name}: entry must be an object with dtype, shape and data_offsets`);
  }
  const entry = value as Record<string, unknown>;

  const dtype = entry.dtype;
  // Object.hasOwn, not `in`: a dtype named "toString" must not reach the prototype.
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BITS, dtype)) {
    throw new SafetensorsError(`tensor ${name}: unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(DTYPE_BITS).join(', ')}`);
  }

  const shape = entry.shape;
  if (!Array.isArray(shape) || shape.some((dim) => !Number.isSafeInteger(dim) || (dim as number) < 0)) {
    throw new SafetensorsError(`tensor ${name}: shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
  }

  const offsets = entry.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
    throw new SafetensorsError(`tensor ${name}: data_offsets ${JSON.stringify(offsets)} must be two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataSize) {
    throw new SafetensorsError(`tensor ${name}: data_offsets [${begin}, ${end}] lie outside the ${dataSize}-byte data section`);
  }

  // Multiply in BigInt so a hostile shape cannot overflow into a plausible size.
  const elements = (shape as number[]).reduce((acc, dim) => acc * BigInt(dim), 1n);
  const bits = elements * BigInt(DTYPE_BITS[dtype]!);
  if (bits % 8n !== 0n) {
    throw new SafetensorsError(`tensor ${name}: shape [${(shape as number[]).join(', ')}] of ${dtype} holds ${bits} bits, which is not a whole number of bytes`);
  }
  const expected = bits / 8n;
  if (expected !== BigInt(end - begin)) {
    throw new SafetensorsError(`tensor ${name}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`);
  }

  return { name, dtype, shape: shape as number[], begin, end };
}

/**
 * Checks that the tensors tile the data section from byte 0 to its end, in offset order,
 * without overlaps, gaps or trailing bytes. The reference reader rejects a gap or a short
 * tensor as InvalidOffset and trailing bytes as MetadataIncompleteBuffer.
 */
function checkLayout(tensors: TensorInfo[], dataSize: number): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: TensorInfo | null = null;
  for (const current of sorted) {
    const expectedBegin = previous?.end ?? 0;
    if (previous && current.begin < previous.end) {
      throw new SafetensorsError(`tensors ${previous.name} and ${current.name} overlap in the data section: ${current.name} begins at byte ${current.begin} but ${previous.name} ends at byte ${previous.end}`);
    }
    if (current.begin > expectedBegin) {
      const after = previous ? `after ${previous.name}, which ends at byte ${expectedBegin}` : 'at the start of the data section';
      throw new SafetensorsError(`tensor ${current.name} begins at byte ${current.begin}, leaving ${current.begin - expectedBegin} unused bytes ${after}; safetensors readers require tensors packed without gaps, so ${SAVE_AGAIN}`);
    }
    previous = current;
  }
  const used = previous?.end ?? 0;
  if (used !== dataSize) {
    throw new SafetensorsError(`the data section has ${dataSize} bytes but its tensors end at byte ${used}; safetensors readers reject the ${dataSize - used} trailing bytes, so ${SAVE_AGAIN}`);
  }
}

/**
 * Finds a key that occurs twice in the top-level object of valid JSON text. JSON.parse keeps
 * only the last occurrence, which would hide a duplicated tensor.
 */
export function firstDuplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') depth--;
    else if (char === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (depth === 1) {
        let next = end + 1;
        while (/\s/.test(text[next] ?? '')) next++;
        if (text[next] === ':') {
          const key = JSON.parse(text.slice(i, end + 1)) as string;
          if (seen.has(key)) return key;
          seen.add(key);
        }
      }
      i = end;
    }
  }
  return null;
}
