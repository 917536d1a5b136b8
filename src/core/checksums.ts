/**
 * Checksums computed while streaming: the plaintext's SHA-256 and size (checked against announcements, stored
 * as metadata when encryption is off), and CRC32 helpers for S3 additional checksums.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';

/** A pass-through that counts bytes and hashes them with SHA-256; read `sha256`/`bytes` after 'end'. */
export class Sha256Meter extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #digest: string | undefined;
  bytes = 0;
  constructor() {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    done();
  }
  /** Lowercase hex SHA-256 of every byte that passed; throws if read before the stream ended. */
  get sha256(): string {
    if (this.#digest === undefined) throw new Error('Sha256Meter: digest read before the stream ended');
    return this.#digest;
  }
}

/** CRC32 (the S3 "CRC32" algorithm) of a buffer, continuing from `previous`. */
export function crc32Update(previous: number, data: Buffer): number {
  return crc32(data, previous);
}

/** S3's base64 form of a CRC32 value (4 bytes, big-endian). */
export function crc32Base64(value: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b.toString('base64');
}

/**
 * S3's composite checksum of a multipart upload: the checksum of the concatenated binary part checksums,
 * followed by "-<part count>" (what HeadObject with ChecksumMode returns for a COMPOSITE CRC32 object).
 */
export function compositeCrc32(partChecksumsBase64: readonly string[]): string {
  const joined = Buffer.concat(partChecksumsBase64.map((c) => Buffer.from(c, 'base64')));
  return `${crc32Base64(crc32(joined))}-${partChecksumsBase64.length}`;
}
