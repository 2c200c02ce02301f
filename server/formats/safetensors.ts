/**
 * Parser for the safetensors header: an 8-byte little-endian header length, a JSON
 * object mapping tensor names to {dtype, shape, data_offsets}, then the data section.
 * Every size and offset read from the file is checked before use.
 */

/** Headers above this size are rejected before any allocation; real adapters stay far below. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
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

/** Reads the header length from the first 8 bytes and checks it against the file size. */
export function readHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(`file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`header length ${length} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  if (length + 8n > BigInt(fileSize)) {
    throw new SafetensorsError(`header length ${length} runs past the end of the ${fileSize}-byte file`);
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

  checkOverlaps(tensors);
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
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    throw new SafetensorsError(`tensor ${name}: unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(DTYPE_BYTES).join(', ')}`);
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
  const expected = elements * BigInt(DTYPE_BYTES[dtype]!);
  if (expected !== BigInt(end - begin)) {
    throw new SafetensorsError(`tensor ${name}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`);
  }

  return { name, dtype, shape: shape as number[], begin, end };
}

function checkOverlaps(tensors: TensorInfo[]): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]!;
    const current = sorted[i]!;
    if (current.begin < previous.end) {
      throw new SafetensorsError(`tensors ${previous.name} and ${current.name} overlap in the data section`);
    }
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
