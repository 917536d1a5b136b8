/**
 * The one codec of encrypted object format v1 (see DESIGN.md): a 48-byte plaintext header, then chunks of
 * AES-256-GCM (the STREAM construction). The writer and the reader mirror each other and both hold at most
 * two chunks in memory, whatever the object's size. A chunk's plaintext is pushed downstream only after its
 * tag verified, so a failing stream never releases unauthenticated bytes.
 *
 *   header  magic "BKS1" | version 1 | algorithm 1 | chunk log2 | 0 | key id (8) | salt (32)
 *   chunk i AES-256-GCM(objectKey, nonce_i, plaintext_i, aad = header) = ciphertext_i || tag_i
 *   nonce_i 7 zero bytes | uint32 BE i | 1 for the last chunk else 0
 *   objectKey = HKDF-SHA256(master, salt, "bucket-storage/v1 segment " + dataspace + "/" + segmentId)
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AuthenticationError, InvalidRangeError, MalformedHeaderError, TruncatedError } from './errors.ts';
import type { KeyEntry, KeyRing } from './keyRing.ts';
import { KEY_ID_SIZE } from './keyRing.ts';
import type { SegmentIdentity } from './objectKeys.ts';

export const HEADER_SIZE = 48;
export const TAG_SIZE = 16;
export const MIN_CHUNK_LOG2 = 16;
export const MAX_CHUNK_LOG2 = 24;
export const DEFAULT_CHUNK_LOG2 = 20;
const MAGIC = Buffer.from('BKS1', 'ascii');
const VERSION = 1;
const ALGORITHM_AES_256_GCM = 1;
const SALT_SIZE = 32;

export interface Header {
  readonly chunkLog2: number;
  readonly keyId: Buffer;
  readonly salt: Buffer;
  /** The 48 bytes as stored: the associated data of every chunk. */
  readonly raw: Buffer;
}

export function encodeHeader(chunkLog2: number, keyId: Buffer, salt: Buffer): Header {
  if (!Number.isInteger(chunkLog2) || chunkLog2 < MIN_CHUNK_LOG2 || chunkLog2 > MAX_CHUNK_LOG2) {
    throw new MalformedHeaderError(`chunk log2 ${chunkLog2} is outside ${MIN_CHUNK_LOG2}..${MAX_CHUNK_LOG2}`);
  }
  const raw = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(raw, 0);
  raw[4] = VERSION;
  raw[5] = ALGORITHM_AES_256_GCM;
  raw[6] = chunkLog2;
  raw[7] = 0;
  keyId.copy(raw, 8, 0, KEY_ID_SIZE);
  salt.copy(raw, 16, 0, SALT_SIZE);
  return parseHeader(raw);
}

/** Parses and checks a header; MalformedHeaderError names what is wrong. */
export function parseHeader(bytes: Buffer): Header {
  if (bytes.length < HEADER_SIZE) throw new MalformedHeaderError(`header is ${bytes.length} bytes; format v1 needs ${HEADER_SIZE}`);
  const raw = Buffer.from(bytes.subarray(0, HEADER_SIZE));
  if (!raw.subarray(0, 4).equals(MAGIC)) throw new MalformedHeaderError('header does not start with "BKS1": not a bucket-storage encrypted object (or encryption was off when it was written)');
  if (raw[4] !== VERSION) throw new MalformedHeaderError(`header version ${raw[4]} is not supported (expected ${VERSION})`);
  if (raw[5] !== ALGORITHM_AES_256_GCM) throw new MalformedHeaderError(`header algorithm ${raw[5]} is not supported (expected 1, AES-256-GCM)`);
  const chunkLog2 = raw[6] ?? 0;
  if (chunkLog2 < MIN_CHUNK_LOG2 || chunkLog2 > MAX_CHUNK_LOG2) throw new MalformedHeaderError(`header chunk log2 ${chunkLog2} is outside ${MIN_CHUNK_LOG2}..${MAX_CHUNK_LOG2}`);
  if (raw[7] !== 0) throw new MalformedHeaderError(`header reserved byte is ${raw[7]}, expected 0`);
  return { chunkLog2, keyId: raw.subarray(8, 16), salt: raw.subarray(16, 48), raw };
}

export function objectKeyFor(master: Buffer, salt: Buffer, identity: SegmentIdentity): Buffer {
  const info = Buffer.from(`bucket-storage/v1 segment ${identity.dataspace}/${identity.segmentId}`, 'utf8');
  return Buffer.from(hkdfSync('sha256', master, salt, info, 32));
}

export function nonceFor(index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(index, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

// ---- layout: sizes and ranges --------------------------------------------------------------------------

/** Number of chunks of a plaintext of `size` bytes (an empty plaintext is one empty chunk). */
export function chunkCount(plaintextSize: number, chunkLog2: number): number {
  return Math.max(1, Math.ceil(plaintextSize / 2 ** chunkLog2));
}

/** Stored size of a plaintext of `size` bytes. */
export function ciphertextSize(plaintextSize: number, chunkLog2: number): number {
  return HEADER_SIZE + plaintextSize + chunkCount(plaintextSize, chunkLog2) * TAG_SIZE;
}

/** The plaintext size a stored object of `size` bytes holds, or undefined when no plaintext has that size. */
export function plaintextSizeOf(storedSize: number, chunkLog2: number): number | undefined {
  const body = storedSize - HEADER_SIZE;
  if (body < TAG_SIZE) return undefined;
  const full = 2 ** chunkLog2 + TAG_SIZE;
  const whole = Math.floor(body / full);
  const rest = body % full;
  if (rest === 0) return whole * 2 ** chunkLog2;
  if (rest < TAG_SIZE + 1 && !(whole === 0 && rest === TAG_SIZE)) return undefined;
  return whole * 2 ** chunkLog2 + rest - TAG_SIZE;
}

export interface RangePlan {
  readonly firstChunk: number;
  readonly lastChunk: number;
  readonly totalChunks: number;
  /** Inclusive byte offsets in the stored object of the chunk span to fetch (one ranged GET). */
  readonly cipherStart: number;
  readonly cipherEnd: number;
  /** Plaintext bytes to drop from the first decrypted chunk, and bytes to keep in all. */
  readonly skip: number;
  readonly length: number;
}

/** Maps the inclusive plaintext range start..end to the one ciphertext span that holds it. */
export function planRange(plaintextSize: number, chunkLog2: number, start: number, end: number): RangePlan {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0) throw new InvalidRangeError(`range ${start}-${end}: start and end must be whole numbers ≥ 0`);
  if (start > end) throw new InvalidRangeError(`range ${start}-${end} is reversed: start must be ≤ end`);
  if (end >= plaintextSize) throw new InvalidRangeError(`range ${start}-${end} ends past the segment's last byte (${plaintextSize - 1}; size ${plaintextSize})`);
  const chunk = 2 ** chunkLog2;
  const firstChunk = Math.floor(start / chunk);
  const lastChunk = Math.floor(end / chunk);
  const totalChunks = chunkCount(plaintextSize, chunkLog2);
  const lastChunkPlain = lastChunk === totalChunks - 1 ? plaintextSize - lastChunk * chunk : chunk;
  return {
    firstChunk,
    lastChunk,
    totalChunks,
    cipherStart: HEADER_SIZE + firstChunk * (chunk + TAG_SIZE),
    cipherEnd: HEADER_SIZE + lastChunk * (chunk + TAG_SIZE) + lastChunkPlain + TAG_SIZE - 1,
    skip: start - firstChunk * chunk,
    length: end - start + 1,
  };
}

// ---- byte queue shared by both streams -----------------------------------------------------------------

/** A FIFO of buffers that hands out exact-size slices with at most one copy. */
class ByteQueue {
  #parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    if (b.length > 0) {
      this.#parts.push(b);
      this.length += b.length;
    }
  }
  take(n: number): Buffer {
    const first = this.#parts[0];
    let out: Buffer;
    if (first !== undefined && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const p = this.#parts[0] as Buffer;
        const k = Math.min(p.length, n - off);
        p.copy(out, off, 0, k);
        off += k;
        if (k === p.length) this.#parts.shift();
        else this.#parts[0] = p.subarray(k);
      }
    }
    this.length -= n;
    return out;
  }
}

// ---- writer --------------------------------------------------------------------------------------------

export interface EncryptOptions {
  readonly key: KeyEntry;
  readonly identity: SegmentIdentity;
  readonly chunkLog2?: number;
  /** Fixed salt for golden vectors only; random per object otherwise. */
  readonly salt?: Buffer;
}

/** The encrypting Transform; `header` is known up front (uploads store it as metadata for ranged reads). */
export type EncryptStream = Transform & { readonly header: Header };

/** A Transform from plaintext to format v1. Memory: about two chunks. */
export function createEncryptStream(options: EncryptOptions): EncryptStream {
  const header = encodeHeader(options.chunkLog2 ?? DEFAULT_CHUNK_LOG2, options.key.keyId, options.salt ?? randomBytes(SALT_SIZE));
  const chunkSize = 2 ** header.chunkLog2;
  const objectKey = objectKeyFor(options.key.master, header.salt, options.identity);
  const queue = new ByteQueue();
  let index = 0;
  const seal = (plain: Buffer, last: boolean): Buffer[] => {
    const cipher = createCipheriv('aes-256-gcm', objectKey, nonceFor(index++, last));
    cipher.setAAD(header.raw);
    const body = cipher.update(plain);
    cipher.final();
    return [body, cipher.getAuthTag()];
  };
  let headerSent = false;
  const stream = new Transform({
    readableHighWaterMark: chunkSize,
    writableHighWaterMark: chunkSize,
    transform(data: Buffer, _enc, done: TransformCallback) {
      if (!headerSent) {
        this.push(header.raw);
        headerSent = true;
      }
      queue.push(data);
      // Hold back a full chunk until a byte beyond it arrives: only then is it known not to be the last.
      while (queue.length > chunkSize) for (const b of seal(queue.take(chunkSize), false)) this.push(b);
      done();
    },
    flush(done: TransformCallback) {
      if (!headerSent) this.push(header.raw);
      for (const b of seal(queue.take(queue.length), true)) this.push(b);
      done();
    },
  });
  return Object.assign(stream, { header });
}

// ---- reader --------------------------------------------------------------------------------------------

export interface DecryptOptions {
  readonly keyRing: KeyRing;
  readonly identity: SegmentIdentity;
  /** When known (object metadata, or required with `range`), the plaintext size: the layout is then exact
   *  and a short stream is TruncatedError even mid-chunk. */
  readonly plaintextSize?: number;
  /** Ranged reads: the header (from object metadata); the stream then holds only the plan's chunk span. */
  readonly header?: Buffer;
  /** Ranged reads: the plan; output is trimmed to the range. Requires `header` and `plaintextSize`. */
  readonly range?: RangePlan;
  /** Called with the parsed header once it is read, before any chunk. */
  readonly onHeader?: (header: Header) => void;
}

/**
 * A Transform from format v1 (whole, or a RangePlan's chunk span) to plaintext. Fails with
 * MalformedHeaderError, UnknownKeyIdError, TruncatedError or AuthenticationError; nothing of a chunk that
 * fails is pushed.
 */
export function createDecryptStream(options: DecryptOptions): Transform {
  const { range, plaintextSize } = options;
  if (range !== undefined && (plaintextSize === undefined || options.header === undefined)) {
    throw new InvalidRangeError('a ranged decrypt needs the header and the plaintext size of the object');
  }
  const queue = new ByteQueue();
  let header: Header | undefined;
  let objectKey: Buffer | undefined;
  let chunkSize = 0;
  let totalChunks = 0;
  let endChunk = Number.POSITIVE_INFINITY; // one past the last chunk this stream holds, when the layout is known
  let index = range?.firstChunk ?? 0;
  let finished = false;
  let skip = range?.skip ?? 0;
  let remaining = range?.length ?? Number.POSITIVE_INFINITY;

  const start = (raw: Buffer) => {
    header = parseHeader(raw);
    const key = options.keyRing.find(header.keyId);
    objectKey = objectKeyFor(key.master, header.salt, options.identity);
    chunkSize = 2 ** header.chunkLog2;
    if (plaintextSize !== undefined) {
      totalChunks = chunkCount(plaintextSize, header.chunkLog2);
      endChunk = range ? range.lastChunk + 1 : totalChunks;
    }
    options.onHeader?.(header);
  };
  /** The plaintext of chunk `index` if its tag verifies with the given last flag, else undefined. */
  const tryOpen = (sealed: Buffer, last: boolean): Buffer | undefined => {
    const decipher = createDecipheriv('aes-256-gcm', objectKey as Buffer, nonceFor(index, last));
    decipher.setAAD((header as Header).raw);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    try {
      const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
      decipher.final();
      return plain;
    } catch {
      return undefined;
    }
  };
  const release = (stream: Transform, chunk: Buffer, last: boolean) => {
    let plain = chunk;
    index++;
    if (last) finished = true;
    if (skip > 0) {
      const k = Math.min(skip, plain.length);
      plain = plain.subarray(k);
      skip -= k;
    }
    if (plain.length > remaining) plain = plain.subarray(0, remaining);
    remaining -= plain.length;
    if (plain.length > 0) stream.push(plain);
  };
  const open = (stream: Transform, sealed: Buffer, last: boolean) => {
    const plain = tryOpen(sealed, last);
    if (plain === undefined) throw new AuthenticationError(index);
    release(stream, plain, last);
  };
  /** Opens every chunk that is complete; with an unknown layout, holds back one that might be the last. */
  const drain = (stream: Transform) => {
    for (;;) {
      if (finished || index >= endChunk) {
        if (queue.length > 0) throw new AuthenticationError(index); // bytes after the final chunk
        return;
      }
      if (plaintextSize !== undefined) {
        const last = index === totalChunks - 1;
        const need = (last ? plaintextSize - index * chunkSize : chunkSize) + TAG_SIZE;
        if (queue.length < need) return;
        open(stream, queue.take(need), last);
      } else {
        if (queue.length <= chunkSize + TAG_SIZE) return;
        open(stream, queue.take(chunkSize + TAG_SIZE), false);
      }
    }
  };

  return new Transform({
    readableHighWaterMark: 1 << 20,
    writableHighWaterMark: 1 << 20,
    transform(data: Buffer, _enc, done: TransformCallback) {
      try {
        queue.push(data);
        if (header === undefined) {
          if (options.header !== undefined) start(options.header);
          else if (queue.length >= HEADER_SIZE) start(queue.take(HEADER_SIZE));
          else return done();
        }
        drain(this);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        if (header === undefined) {
          if (options.header === undefined) throw new MalformedHeaderError(`stream ended after ${queue.length} bytes, before the ${HEADER_SIZE}-byte header`);
          start(options.header);
        }
        if (plaintextSize !== undefined) {
          drain(this);
          if (index < endChunk) throw new TruncatedError(`object ends inside or before chunk ${index} (${queue.length} bytes of it): it was truncated`, index);
        } else if (!finished) {
          if (queue.length === 0) {
            throw new TruncatedError(
              index === 0 ? 'object holds a header but no chunk: it was truncated' : `object ends at a chunk boundary after chunk ${index - 1} without its final chunk: it was truncated`,
              index,
            );
          }
          if (queue.length < TAG_SIZE + (index === 0 ? 0 : 1)) throw new TruncatedError(`object ends inside chunk ${index} (${queue.length} bytes, shorter than a tag): it was truncated`, index);
          const sealed = queue.take(queue.length);
          const plain = tryOpen(sealed, true);
          if (plain !== undefined) release(this, plain, true);
          else if (sealed.length === chunkSize + TAG_SIZE && tryOpen(sealed, false) !== undefined) {
            // A full chunk that verifies only as a middle chunk: the object was cut at a chunk boundary. Its
            // bytes are authentic, but the stream fails here all the same.
            throw new TruncatedError(`object ends at a chunk boundary after chunk ${index} without its final chunk: it was truncated`, index + 1);
          } else throw new AuthenticationError(index);
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
}
