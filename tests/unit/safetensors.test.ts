import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DTYPE_BITS, MAX_HEADER_BYTES, parseHeader, readHeaderLength, SafetensorsError } from '../../server/formats/safetensors';
import { safetensorsBytes } from '../setup/helpers';

function parse(bytes: Buffer) {
  const length = readHeaderLength(bytes.subarray(0, 8), bytes.length);
  return parseHeader(bytes.subarray(8, 8 + length), bytes.length);
}

function withHeader(header: unknown, dataBytes = 0): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, Buffer.alloc(dataBytes)]);
}

describe('safetensors header parser', () => {
  it('reads tensors and metadata of a valid file', () => {
    const parsed = parse(safetensorsBytes({ a: { shape: [2, 3] }, b: { shape: [4] } }, { format: 'pt' }));
    expect(parsed.tensors.map((t) => [t.name, t.shape])).toEqual([['a', [2, 3]], ['b', [4]]]);
    expect(parsed.metadata).toEqual({ format: 'pt' });
  });

  it('rejects an empty file', () => {
    expect(() => readHeaderLength(new Uint8Array(0), 0)).toThrow(/^file is empty \(0 bytes\).*8-byte header length.*save_pretrained/);
  });

  it('rejects a file shorter than the length prefix', () => {
    expect(() => readHeaderLength(new Uint8Array(5), 5)).toThrow(/^file is 5 bytes; a safetensors file starts with an 8-byte header length/);
  });

  it('names a PyTorch zip checkpoint saved as safetensors', () => {
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(60)]);
    expect(() => parse(zip)).toThrow(/runs past the end of the 64-byte file.*PyTorch pickle checkpoint renamed to \.safetensors.*safe_serialization=True/);
  });

  it('names a bare pickle saved as safetensors', () => {
    const pickle = Buffer.concat([Buffer.from([0x80, 0x04, 0x95, 0x10, 0, 0, 0, 0]), Buffer.alloc(8)]);
    expect(() => parse(pickle)).toThrow(/PyTorch pickle checkpoint/);
  });

  it('rejects a header length beyond the file', () => {
    const bytes = withHeader({});
    bytes.writeBigUInt64LE(10_000n);
    expect(() => parse(bytes)).toThrow(/runs past the end/);
  });

  it('rejects a header length above the cap before allocating', () => {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES) + 1n);
    expect(() => readHeaderLength(bytes, 2 ** 40)).toThrow(/exceeds the limit/);
  });

  it('rejects an unknown dtype', () => {
    expect(() => parse(withHeader({ a: { dtype: 'F7', shape: [1], data_offsets: [0, 1] } }, 1))).toThrow(/unknown dtype "F7"/);
  });

  it('rejects a dtype name from the object prototype', () => {
    expect(() => parse(withHeader({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 1] } }, 1))).toThrow(/unknown dtype "toString"/);
  });

  it('sizes sub-byte dtypes in bits', () => {
    expect(parse(withHeader({ a: { dtype: 'F4', shape: [2, 3], data_offsets: [0, 3] } }, 3)).tensors[0]!.dtype).toBe('F4');
    expect(() => parse(withHeader({ a: { dtype: 'F4', shape: [3], data_offsets: [0, 1] } }, 1))).toThrow(/holds 12 bits, which is not a whole number of bytes/);
    expect(parse(withHeader({ a: { dtype: 'F6_E2M3', shape: [4], data_offsets: [0, 3] } }, 3)).tensors).toHaveLength(1);
  });

  it('rejects overlapping tensors', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    expect(() => parse(withHeader(header, 12))).toThrow(/a and b overlap/);
  });

  it('rejects a gap between tensors', () => {
    const header = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    expect(() => parse(withHeader(header, 12))).toThrow('tensor b begins at byte 8, leaving 4 unused bytes after a, which ends at byte 4');
  });

  it('rejects a data section that does not start at byte 0', () => {
    expect(() => parse(withHeader({ a: { dtype: 'U8', shape: [1], data_offsets: [1, 2] } }, 2))).toThrow(/leaving 1 unused bytes at the start of the data section/);
  });

  it('rejects bytes after the last tensor', () => {
    expect(() => parse(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 6))).toThrow('the data section has 6 bytes but its tensors end at byte 4');
  });

  it('accepts zero-sized tensors', () => {
    const header = { a: { dtype: 'F32', shape: [0, 4], data_offsets: [0, 0] }, b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
    expect(parse(withHeader(header, 4)).tensors.map((t) => t.name)).toEqual(['a', 'b']);
  });

  it('rejects offsets outside the data section', () => {
    expect(() => parse(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4))).toThrow(/outside the 4-byte data section/);
  });

  it('rejects a shape that disagrees with the byte span', () => {
    expect(() => parse(withHeader({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))).toThrow(/needs 12 bytes but data_offsets span 8/);
  });

  it('rejects a huge shape without overflowing', () => {
    const header = { a: { dtype: 'F32', shape: [2 ** 31, 2 ** 31, 2 ** 31], data_offsets: [0, 8] } };
    expect(() => parse(withHeader(header, 8))).toThrow(SafetensorsError);
  });

  it('rejects a header that is not a JSON object', () => {
    expect(() => parse(withHeader([1, 2]))).toThrow(/must be a JSON object/);
  });

  it('survives random bytes without crashing', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 2000; round++) {
      const base = safetensorsBytes({ w: { shape: [3, 2] } });
      for (let flips = 0; flips < 4; flips++) base[Math.floor(random() * base.length)] = Math.floor(random() * 256);
      try {
        parse(base);
      } catch (error) {
        expect(error).toBeInstanceOf(SafetensorsError);
      }
    }
  });
});

describe('safetensors header parser under random input', () => {
  const header = (tensors: Record<string, unknown>) => withHeader(tensors, 64);

  it('rejects a tensor name listed twice', () => {
    const json = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const bytes = Buffer.concat([Buffer.alloc(8), Buffer.from(json), Buffer.alloc(8)]);
    bytes.writeBigUInt64LE(BigInt(json.length));
    expect(() => parse(bytes)).toThrow('tensor w appears twice in the header');
  });

  it('never throws anything but SafetensorsError on 100,000 random and mutated headers', () => {
    const entry = fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8'), fc.string()),
      shape: fc.oneof(fc.array(fc.nat({ max: 2 ** 40 }), { maxLength: 4 }), fc.anything()),
      data_offsets: fc.oneof(fc.tuple(fc.nat(), fc.nat()), fc.array(fc.integer(), { maxLength: 3 }), fc.anything()),
    }, { requiredKeys: [] });
    const headerArbitrary = fc.dictionary(fc.oneof(fc.string(), fc.constant('__metadata__')), fc.oneof(entry, fc.anything()), { maxKeys: 6 });
    const bytesArbitrary = fc.oneof(
      headerArbitrary.map((h) => header(h)),
      fc.tuple(headerArbitrary, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 6 })).map(([h, flips]) => {
        const bytes = header(h);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        return bytes;
      }),
      fc.uint8Array({ maxLength: 64 }).map((array) => Buffer.from(array)),
    );
    fc.assert(fc.property(bytesArbitrary, (bytes) => {
      try {
        const length = readHeaderLength(bytes.subarray(0, 8), bytes.length);
        const parsed = parseHeader(bytes.subarray(8, 8 + length), bytes.length);
        // Whatever parses must describe byte ranges inside the file.
        for (const tensor of parsed.tensors) expect(8 + length + tensor.end).toBeLessThanOrEqual(bytes.length);
      } catch (error) {
        if (!(error instanceof SafetensorsError)) throw error;
      }
    }), { numRuns: 100_000, seed: 20261204 });
  }, 300_000);

  it('parses every well-formed file and rejects it with a byte added or removed', () => {
    const tensorArbitrary = fc.record({ dtype: fc.constantFrom(...Object.keys(DTYPE_BITS)), shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }) });
    const filesArbitrary = fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), tensorArbitrary), { selector: ([name]) => name, maxLength: 5 })
      .filter((entries) => entries.every(([name]) => name !== '__metadata__'));
    fc.assert(fc.property(filesArbitrary, fc.boolean(), (entries, grow) => {
      const header: Record<string, unknown> = {};
      let offset = 0;
      for (const [name, { dtype, shape }] of entries) {
        const bits = shape.reduce((acc, dim) => acc * dim, 1) * DTYPE_BITS[dtype]!;
        // Pad odd sub-byte tensors to whole bytes, as a writer must.
        const fixedShape = bits % 8 === 0 ? shape : [...shape, 8];
        const bytes = (fixedShape.reduce((acc, dim) => acc * dim, 1) * DTYPE_BITS[dtype]!) / 8;
        header[name] = { dtype, shape: fixedShape, data_offsets: [offset, offset + bytes] };
        offset += bytes;
      }
      const parsed = parse(withHeader(header, offset));
      expect(parsed.tensors.map((t) => t.name).sort()).toEqual(entries.map(([name]) => name).sort());
      if (offset > 0 || grow) {
        expect(() => parse(withHeader(header, grow ? offset + 1 : offset - 1))).toThrow(SafetensorsError);
      }
    }), { numRuns: 2_000, seed: 20261205 });
  });
});
