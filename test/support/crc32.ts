/**
 * CRC32 helpers for S3 additional checksums, for tests: the upload asks S3 (through lib-storage) to compute
 * CRC32 and compares the values S3 reports, so nothing in src/ computes one.
 */
import { crc32 } from 'node:zlib';

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
