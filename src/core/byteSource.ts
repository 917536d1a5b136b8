/**
 * Bytes pulled into buffers the caller owns: how an upload moves a segment from its source into the parts of
 * its object without a stream in between. A stream hands out a fresh buffer per chunk (a 1 MiB file read is a
 * 1 MiB allocation the kernel must fault in, then garbage); a ByteSource fills the part buffer the upload
 * already holds, so the bytes are read once, into memory that is reused part after part.
 *
 *   fileBytes       positional reads of an open file, straight into the target;
 *   readableBytes   any Readable (an S3 GET body): its chunks copied into the target;
 *   CheckedBytes    the size and SHA-256 checks of VerifyingMeter on a ByteSource (the upload's source).
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { IntegrityError, TruncatedError } from './errors.ts';

export interface ByteSource {
  /** Fills `target` from its start; resolves with the count, which is less than target.length only at the end. */
  read(target: Buffer): Promise<number>;
}

/** Sequential reads of `handle` from `start`, with positional reads (the handle's own position is not used). */
export function fileBytes(handle: Pick<FileHandle, 'read'>, start = 0): ByteSource {
  let position = start;
  return {
    async read(target) {
      let filled = 0;
      while (filled < target.length) {
        const { bytesRead } = await handle.read(target, filled, target.length - filled, position);
        if (bytesRead === 0) break;
        filled += bytesRead;
        position += bytesRead;
      }
      return filled;
    },
  };
}

/** The chunks of `stream` copied into the targets (one copy of each byte); the stream's error rejects a read. */
export function readableBytes(stream: Readable): ByteSource {
  const chunks = stream[Symbol.asyncIterator]();
  let pending: Buffer | undefined;
  let ended = false;
  return {
    async read(target) {
      let filled = 0;
      while (filled < target.length) {
        if (pending === undefined || pending.length === 0) {
          if (ended) break;
          const next = await chunks.next();
          if (next.done === true) {
            ended = true;
            break;
          }
          pending = asBuffer(next.value);
          continue;
        }
        const n = pending.copy(target, filled);
        filled += n;
        pending = pending.subarray(n);
      }
      return filled;
    },
  };
}

function asBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return Buffer.from(String(value));
}

export interface ByteExpectation {
  /** Bytes the source must hold, exactly. */
  readonly size: number;
  /** Hex SHA-256 they must have. */
  readonly sha256?: string | undefined;
  /** Compute the SHA-256 even without an expected one (to report it, or store it). */
  readonly digest: boolean;
  /** Names the source in error messages. */
  readonly what: string;
  /** What the expected digest is, for the message (default: the stored bks-sha256). */
  readonly sha256Of?: string | undefined;
}

/**
 * A ByteSource that must hold exactly `size` bytes (and, when given, have the expected SHA-256): the last read
 * rejects with TruncatedError if it ends short, IntegrityError if a byte more follows or the digest differs —
 * before the caller has sent the last part, so a failed check leaves no object. The checks and messages of
 * VerifyingMeter, for pulled bytes.
 */
export class CheckedBytes implements ByteSource {
  readonly #inner: ByteSource;
  readonly #expected: ByteExpectation;
  readonly #hash: Hash | undefined;
  #bytes = 0;
  #digest: string | undefined;
  #done = false;

  constructor(inner: ByteSource, expected: ByteExpectation) {
    this.#inner = inner;
    this.#expected = expected;
    this.#hash = expected.digest || expected.sha256 !== undefined ? createHash('sha256') : undefined;
  }

  /** Bytes passed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Hex SHA-256 of every byte, once all were read (undefined when no digest was asked for). */
  get sha256(): string | undefined {
    if (this.#hash !== undefined && this.#digest === undefined) throw new Error('CheckedBytes: digest read before the source was read to its end');
    return this.#digest;
  }

  async read(target: Buffer): Promise<number> {
    if (this.#done) return 0;
    const { size, what } = this.#expected;
    const want = Math.min(target.length, size - this.#bytes);
    const n = want === 0 ? 0 : await this.#inner.read(target.subarray(0, want));
    this.#hash?.update(target.subarray(0, n));
    this.#bytes += n;
    if (n < want) throw new TruncatedError(`${what}: ended after ${this.#bytes} of ${size} bytes: it was truncated`);
    if (this.#bytes === size) await this.#finish();
    return n;
  }

  /** At the expected size: no byte may follow, and the digest must match. */
  async #finish(): Promise<void> {
    this.#done = true;
    const { size, sha256, what } = this.#expected;
    if ((await this.#inner.read(Buffer.allocUnsafe(1))) > 0) throw new IntegrityError('size', String(size), `more than ${size} bytes`, what);
    this.#digest = this.#hash?.digest('hex');
    if (sha256 !== undefined && this.#digest !== sha256) {
      throw new IntegrityError('sha256', sha256, this.#digest ?? '', `${what} (${this.#expected.sha256Of ?? 'stored bks-sha256'})`);
    }
  }
}
