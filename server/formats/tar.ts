/**
 * Streaming writer of POSIX ustar archives, with a small reader that lists their members.
 *
 * Layout (POSIX.1-1988 ustar, as POSIX.1-2001 `pax` describes it): every member is one
 * 512-byte header block, then its data padded with zeros to a multiple of 512 bytes. Two
 * zero blocks end the archive. A name longer than the 100-byte name field is split at a "/"
 * into the 155-byte prefix field and the name field. Sizes at or above 8 GiB do not fit
 * the 11 octal digits of the size field, so such a member is preceded by a pax extended
 * header (typeflag "x") that carries its exact size. GNU tar and Python's tarfile read
 * both (tests/unit/tar.test.ts checks them).
 */
import type { Readable } from 'node:stream';

export const BLOCK_SIZE = 512;
const NAME_BYTES = 100;
const PREFIX_BYTES = 155;
// Largest value of an 11-digit octal field: 8 GiB - 1 bytes for sizes, seconds for mtime.
const MAX_OCTAL_11 = 0o77777777777;
const FILE_MODE = 0o644;
const PAX_HEADER_NAME = '././@PaxHeader';

export class TarError extends Error {
  override name = 'TarError';
}

export interface TarMember {
  // Path inside the archive, relative, with "/" between folders.
  name: string;
  // Data length in bytes.
  size: number;
  mtime: Date;
}

export interface TarSource extends TarMember {
  // Opens the member's data, which must be exactly `size` bytes. The writer calls it once,
  // when it reaches this member, so only one source is open at a time.
  open: () => Promise<Readable>;
}

/**
 * Splits a member name into the ustar prefix and name fields (UTF-8 bytes), or throws a
 * TarError that names the path when it is invalid or does not fit.
 */
export function splitUstarName(name: string): { prefix: Buffer; name: Buffer } {
  const quoted = JSON.stringify(name);
  if (name === '' || name.includes('\0')) throw new TarError(`tar member name ${quoted} is invalid: it is empty or contains a NUL character`);
  if (name.startsWith('/')) throw new TarError(`tar member name ${quoted} is invalid: it must be a relative path`);
  const parts = name.split('/');
  if (parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new TarError(`tar member name ${quoted} is invalid: it contains an empty, "." or ".." path segment`);
  }

  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length <= NAME_BYTES) return { prefix: Buffer.alloc(0), name: bytes };

  // UTF-8 never uses 0x2f inside a multi-byte character, so every 0x2f byte is a "/".
  // The first "/" that leaves at most 100 bytes after it gives the shortest prefix.
  for (let slash = bytes.indexOf(0x2f); slash !== -1; slash = bytes.indexOf(0x2f, slash + 1)) {
    if (bytes.length - slash - 1 > NAME_BYTES) continue;
    if (slash > PREFIX_BYTES) break;
    return { prefix: bytes.subarray(0, slash), name: bytes.subarray(slash + 1) };
  }
  throw new TarError(
    `tar member name ${quoted} is ${bytes.length} bytes and does not fit a ustar header: it needs a "/" with at most `
    + `${PREFIX_BYTES} bytes before it and ${NAME_BYTES} after it (a name without "/" may have ${NAME_BYTES} bytes); use a shorter path`,
  );
}

/** Writes `value` as zero-padded octal digits followed by a NUL, filling `width` bytes. */
function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  const digits = value.toString(8).padStart(width - 1, '0');
  if (digits.length > width - 1) throw new TarError(`value ${value} does not fit a ${width}-byte octal field`);
  block.write(`${digits}\0`, offset, width, 'ascii');
}

/** Builds one 512-byte header block and fills in its checksum. */
function headerBlock(fields: { prefix: Buffer; name: Buffer; size: number; mtimeSeconds: number; typeflag: string }): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  fields.name.copy(block, 0);
  writeOctal(block, 100, 8, FILE_MODE);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtimeSeconds);
  block.write(fields.typeflag, 156, 1, 'ascii');
  block.write('ustar\x0000', 257, 8, 'ascii'); // magic "ustar" NUL, then version "00"
  writeOctal(block, 329, 8, 0); // devmajor
  writeOctal(block, 337, 8, 0); // devminor
  fields.prefix.copy(block, 345);
  // The checksum is the sum of all header bytes with the checksum field read as 8 spaces,
  // stored as 6 octal digits, a NUL and a space.
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

/** Encodes pax records ("LENGTH key=value\n", LENGTH counting the whole record in bytes). */
function paxRecords(records: Record<string, string>): Buffer {
  let text = '';
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    const bodyBytes = Buffer.byteLength(body, 'utf8');
    let length = bodyBytes + 1;
    while (String(length).length + bodyBytes !== length) length = String(length).length + bodyBytes;
    text += `${length}${body}`;
  }
  return Buffer.from(text, 'utf8');
}

/** Returns the number of zero bytes that pad `size` bytes of data to a whole block. */
export function paddingBytes(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

/**
 * Builds the header blocks of one member: a single ustar header, preceded by a pax
 * extended header when the size needs more than 11 octal digits. Throws a TarError for a
 * name that does not fit and for a size that is not a non-negative safe integer.
 */
export function memberHeader(member: TarMember): Buffer {
  const { prefix, name } = splitUstarName(member.name);
  if (!Number.isSafeInteger(member.size) || member.size < 0) {
    throw new TarError(`size ${member.size} of tar member ${JSON.stringify(member.name)} is not a non-negative integer number of bytes`);
  }
  // Times outside the octal field (before 1970 or after the year 2242) are clamped.
  const mtimeSeconds = Math.min(MAX_OCTAL_11, Math.max(0, Math.floor(member.mtime.getTime() / 1000)));
  if (member.size <= MAX_OCTAL_11) return headerBlock({ prefix, name, size: member.size, mtimeSeconds, typeflag: '0' });

  const records = paxRecords({ size: String(member.size) });
  const pax = headerBlock({ prefix: Buffer.alloc(0), name: Buffer.from(PAX_HEADER_NAME), size: records.length, mtimeSeconds, typeflag: 'x' });
  // The ustar size field of a member whose pax header gives the size is not read; 0 keeps it valid octal.
  const ustar = headerBlock({ prefix, name, size: 0, mtimeSeconds, typeflag: '0' });
  return Buffer.concat([pax, records, Buffer.alloc(paddingBytes(records.length)), ustar]);
}

/** Returns the exact byte length of the archive that `tarStream` writes for these members. */
export function archiveSize(members: TarMember[]): number {
  let total = 2 * BLOCK_SIZE;
  for (const member of members) total += memberHeader(member).length + member.size + paddingBytes(member.size);
  return total;
}

export interface TarStreamHooks {
  // Called once when a source fails or delivers the wrong length; the stream then errors.
  onError?: (error: unknown) => void;
  // Called when the consumer cancels, with the archive bytes handed to it so far.
  onCancel?: (sentBytes: number) => void;
}

/**
 * Streams a ustar archive of `sources` in order, reading each source only as fast as the
 * consumer reads the archive. Every name is checked before the first byte is produced, so
 * a TarError is thrown from this call, not from the stream. A source that delivers more
 * or fewer bytes than its size fails the stream, because the archive would be corrupt.
 * Cancelling the stream (a client that disconnects) destroys the source being read.
 */
export function tarStream(sources: TarSource[], hooks: TarStreamHooks = {}): ReadableStream<Uint8Array> {
  const headers = sources.map(memberHeader);
  let current: Readable | null = null;
  let cancelled = false;
  let sentBytes = 0;

  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (const [index, source] of sources.entries()) {
      yield headers[index]!;
      if (source.size > 0) {
        const stream = await source.open();
        if (cancelled) {
          stream.destroy();
          return;
        }
        current = stream;
        let received = 0;
        try {
          for await (const chunk of stream) {
            received += (chunk as Uint8Array).length;
            if (received > source.size) throw new TarError(`tar member ${JSON.stringify(source.name)} delivered more than its ${source.size} bytes`);
            yield chunk as Uint8Array;
          }
        } finally {
          stream.destroy();
          current = null;
        }
        if (received !== source.size) throw new TarError(`tar member ${JSON.stringify(source.name)} ended after ${received} of its ${source.size} bytes`);
      }
      const padding = paddingBytes(source.size);
      if (padding > 0) yield Buffer.alloc(padding);
    }
    yield Buffer.alloc(2 * BLOCK_SIZE);
  }

  const iterator = chunks();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (cancelled) return;
        if (next.done) {
          controller.close();
        } else {
          sentBytes += next.value.length;
          controller.enqueue(next.value);
        }
      } catch (error) {
        // After a cancel, the destroyed source ends the read early, which is not an error.
        if (cancelled) return;
        hooks.onError?.(error);
        controller.error(error);
      }
    },
    cancel() {
      cancelled = true;
      // Destroying the source also ends a read that is waiting for the store right now.
      // return() alone would wait for that read to finish first.
      current?.destroy();
      iterator.return(undefined).catch(() => undefined);
      hooks.onCancel?.(sentBytes);
    },
  });
}

export interface ListedMember {
  name: string;
  size: number;
  // The ustar typeflag: "0" for a regular file, "5" for a folder, and so on.
  type: string;
}

function readString(block: Buffer, offset: number, width: number): string {
  const field = block.subarray(offset, offset + width);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? width : end).toString('utf8');
}

/** Reads an octal field, or a base-256 one (high bit of the first byte set) as GNU tar writes large values. */
function readNumber(block: Buffer, offset: number, width: number): number {
  const field = block.subarray(offset, offset + width);
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = field.toString('ascii').replace(/[\0 ]+$/, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`tar header field at offset ${offset} is ${JSON.stringify(text)}, not an octal number`);
  return parseInt(text, 8);
}

function parsePax(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = Number(data.subarray(offset, space).toString('ascii'));
    if (space === -1 || !Number.isInteger(length) || length <= 0 || offset + length > data.length) throw new TarError(`pax extended header has a malformed record at byte ${offset}`);
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

/**
 * Lists the members of a ustar or pax archive without reading their data. `readAt`
 * returns up to `length` bytes at `offset`. Throws a TarError on a bad checksum or an
 * archive that ends before its end-of-archive blocks.
 */
export async function listTarMembers(readAt: (offset: number, length: number) => Promise<Buffer>): Promise<ListedMember[]> {
  const members: ListedMember[] = [];
  let offset = 0;
  let pax: Record<string, string> = {};
  for (;;) {
    const block = await readAt(offset, BLOCK_SIZE);
    if (block.length < BLOCK_SIZE) throw new TarError(`archive ends at byte ${offset + block.length} without its two zero end blocks; it is truncated`);
    if (block.every((byte) => byte === 0)) return members;

    const stored = readNumber(block, 148, 8);
    let sum = 0;
    for (const [index, byte] of block.entries()) sum += index >= 148 && index < 156 ? 0x20 : byte;
    if (stored !== sum) throw new TarError(`tar header at byte ${offset} has checksum ${stored}, but its bytes sum to ${sum}; the archive is corrupt`);

    const type = String.fromCharCode(block[156]!) === '\0' ? '0' : String.fromCharCode(block[156]!);
    const headerSize = readNumber(block, 124, 12);
    offset += BLOCK_SIZE;
    if (type === 'x' || type === 'g') {
      const data = await readAt(offset, headerSize);
      if (type === 'x') pax = parsePax(data);
      offset += headerSize + paddingBytes(headerSize);
      continue;
    }

    const prefix = readString(block, 345, PREFIX_BYTES);
    const name = pax.path ?? (prefix ? `${prefix}/${readString(block, 0, NAME_BYTES)}` : readString(block, 0, NAME_BYTES));
    const size = pax.size === undefined ? headerSize : Number(pax.size);
    members.push({ name, size, type });
    pax = {};
    // Links and folders carry no data, whatever their size field contains.
    const dataSize = ['1', '2', '3', '4', '5', '6'].includes(type) ? 0 : size;
    offset += dataSize + paddingBytes(dataSize);
  }
}
