/**
 * Where the bytes of a format v1 object lie (docs/FORMAT.md): the header, then chunks of 2^chunkLog2 plaintext
 * bytes each plus a tag; the last chunk holds 1..chunkSize bytes (0 only for an empty plaintext, which is one
 * empty chunk). Pure arithmetic, so a byte range maps to the one ranged GET that holds it.
 */
import { InvalidRangeError } from '../errors.ts';
import { TAG_SIZE } from './chunkCipher.ts';
import { HEADER_SIZE } from './header.ts';

/**
 * The one check of a plaintext byte range: throws InvalidRangeError unless start..end (inclusive) lies inside
 * a segment of `size` bytes. Restores of plain and encrypted segments both use it.
 */
export function checkRange(size: number, start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0) throw new InvalidRangeError(`range ${start}-${end}: start and end must be whole numbers ≥ 0`);
  if (start > end) throw new InvalidRangeError(`range ${start}-${end} is reversed: start must be ≤ end`);
  if (end >= size) throw new InvalidRangeError(`range ${start}-${end} ends past the segment's last byte (${size === 0 ? 'the segment is empty' : `${size - 1}; size ${size}`})`);
}

/** Number of chunks of a plaintext of `size` bytes (an empty plaintext is one empty chunk). */
export function chunkCount(plaintextSize: number, chunkLog2: number): number {
  return Math.max(1, Math.ceil(plaintextSize / 2 ** chunkLog2));
}

/** Plaintext bytes in chunk `index`: a whole chunk, except in the last one. */
export function chunkPlainSize(plaintextSize: number, chunkLog2: number, index: number): number {
  const chunkSize = 2 ** chunkLog2;
  return index === chunkCount(plaintextSize, chunkLog2) - 1 ? plaintextSize - index * chunkSize : chunkSize;
}

/** Stored size of a plaintext of `size` bytes. */
export function ciphertextSize(plaintextSize: number, chunkLog2: number): number {
  return HEADER_SIZE + plaintextSize + chunkCount(plaintextSize, chunkLog2) * TAG_SIZE;
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

/** Maps the inclusive plaintext range start..end (checked with checkRange) to the one ciphertext span that holds it. */
export function planRange(plaintextSize: number, chunkLog2: number, start: number, end: number): RangePlan {
  checkRange(plaintextSize, start, end);
  const chunkSize = 2 ** chunkLog2;
  const firstChunk = Math.floor(start / chunkSize);
  const lastChunk = Math.floor(end / chunkSize);
  const sealedChunkSize = chunkSize + TAG_SIZE;
  return {
    firstChunk,
    lastChunk,
    totalChunks: chunkCount(plaintextSize, chunkLog2),
    cipherStart: HEADER_SIZE + firstChunk * sealedChunkSize,
    cipherEnd: HEADER_SIZE + lastChunk * sealedChunkSize + chunkPlainSize(plaintextSize, chunkLog2, lastChunk) + TAG_SIZE - 1,
    skip: start - firstChunk * chunkSize,
    length: end - start + 1,
  };
}
