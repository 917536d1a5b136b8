/**
 * Reads the chunks of one object out of a queue of stored bytes, for decryptStream.ts. A chunk is opened only
 * once all its bytes are held, and its plaintext is handed out only after its tag verified. Two layouts:
 * - sized: the plaintext size is known (object metadata), so every chunk's size is too, and a stream that ends
 *   short is TruncatedError even mid-chunk; it may hold only a range's chunk span;
 * - unsized: the last chunk is known only when the stream ends, so one full chunk is held back until a byte
 *   beyond it arrives (the mirror of the writer).
 */
import { AuthenticationError, TruncatedError } from '../errors.ts';
import type { ByteQueue } from './byteQueue.ts';
import { TAG_SIZE, type ChunkCipher } from './chunkCipher.ts';
import { chunkCount, chunkPlainSize, type RangePlan } from './layout.ts';

/** The plaintext bytes start..end (end exclusive) that the stream delivers. */
interface Window {
  readonly start: number;
  readonly end: number;
}

export abstract class ChunkReader {
  protected readonly chunkSize: number;
  #next: number;

  constructor(
    protected readonly cipher: ChunkCipher,
    protected readonly chunkLog2: number,
    firstChunk: number,
    private readonly window: Window,
  ) {
    this.chunkSize = 2 ** chunkLog2;
    this.#next = firstChunk;
  }

  /** The index of the chunk to open next. */
  get nextChunk(): number {
    return this.#next;
  }

  /** True once the last chunk this stream holds was opened. */
  abstract get done(): boolean;

  /** Opens every chunk that the queue holds in full and that is known to be a middle or the last chunk. */
  abstract read(stored: ByteQueue): Generator<Buffer>;

  /** At the end of the stream: opens what is left, or throws TruncatedError naming the first chunk missing. */
  abstract finish(stored: ByteQueue): Generator<Buffer>;

  /** The plaintext of the next chunk, inside the window; AuthenticationError if its tag does not verify as `last` or not. */
  protected open(sealed: Buffer, last: boolean): Buffer {
    const plain = this.cipher.open(this.#next, last, sealed);
    if (plain === undefined) throw new AuthenticationError(this.#next);
    return this.release(plain);
  }

  /** Counts the next chunk as read; returns the part of its (authenticated) plaintext inside the window. */
  protected release(plain: Buffer): Buffer {
    const offset = this.#next++ * this.chunkSize;
    const from = Math.max(0, this.window.start - offset);
    const to = Math.min(plain.length, this.window.end - offset);
    return to <= from ? plain.subarray(0, 0) : plain.subarray(from, to);
  }
}

/** The plaintext size is known: each chunk's size is exact. */
export class SizedChunkReader extends ChunkReader {
  readonly #plaintextSize: number;
  readonly #totalChunks: number;
  /** One past the last chunk this stream holds. */
  readonly #endChunk: number;

  constructor(cipher: ChunkCipher, chunkLog2: number, plaintextSize: number, range: RangePlan | undefined) {
    const chunkSize = 2 ** chunkLog2;
    const start = range === undefined ? 0 : range.firstChunk * chunkSize + range.skip;
    const end = range === undefined ? plaintextSize : start + range.length;
    super(cipher, chunkLog2, range?.firstChunk ?? 0, { start, end });
    this.#plaintextSize = plaintextSize;
    this.#totalChunks = chunkCount(plaintextSize, chunkLog2);
    this.#endChunk = range === undefined ? this.#totalChunks : range.lastChunk + 1;
  }

  override get done(): boolean {
    return this.nextChunk >= this.#endChunk;
  }

  override *read(stored: ByteQueue): Generator<Buffer> {
    while (!this.done) {
      const index = this.nextChunk;
      const sealedSize = chunkPlainSize(this.#plaintextSize, this.chunkLog2, index) + TAG_SIZE;
      if (stored.length < sealedSize) return;
      yield this.open(stored.take(sealedSize), index === this.#totalChunks - 1);
    }
  }

  override *finish(stored: ByteQueue): Generator<Buffer> {
    yield* this.read(stored);
    if (!this.done) {
      const index = this.nextChunk;
      throw new TruncatedError(`object ends inside or before chunk ${index} (${stored.length} bytes of it): it was truncated`, { chunkIndex: index });
    }
  }
}

/** The plaintext size is unknown: the last chunk is the one the stream ends with. */
export class UnsizedChunkReader extends ChunkReader {
  #finalOpened = false;

  constructor(cipher: ChunkCipher, chunkLog2: number) {
    super(cipher, chunkLog2, 0, { start: 0, end: Number.POSITIVE_INFINITY });
  }

  override get done(): boolean {
    return this.#finalOpened;
  }

  override *read(stored: ByteQueue): Generator<Buffer> {
    const sealedSize = this.chunkSize + TAG_SIZE;
    // A full chunk is a middle chunk only once a byte beyond it arrived; until then it may be the last.
    while (stored.length > sealedSize) yield this.open(stored.take(sealedSize), false);
  }

  override *finish(stored: ByteQueue): Generator<Buffer> {
    this.#checkFinalChunkBegun(stored);
    const index = this.nextChunk;
    const sealed = stored.takeAll();
    const plain = this.cipher.open(index, true, sealed);
    if (plain !== undefined) {
      this.#finalOpened = true;
      yield this.release(plain);
    } else if (sealed.length === this.chunkSize + TAG_SIZE && this.cipher.open(index, false, sealed) !== undefined) {
      // A full chunk that verifies only as a middle chunk: the object was cut at a chunk boundary. Its bytes
      // are authentic, but the stream fails here all the same.
      throw new TruncatedError(`object ends at a chunk boundary after chunk ${index} without its final chunk: it was truncated`, { chunkIndex: index + 1 });
    } else {
      throw new AuthenticationError(index);
    }
  }

  /** TruncatedError unless the bytes left can be a final chunk (a tag, and one byte unless it is the only chunk). */
  #checkFinalChunkBegun(stored: ByteQueue): void {
    const index = this.nextChunk;
    if (stored.length === 0) {
      const where = index === 0 ? 'object holds a header but no chunk' : `object ends at a chunk boundary after chunk ${index - 1} without its final chunk`;
      throw new TruncatedError(`${where}: it was truncated`, { chunkIndex: index });
    }
    if (stored.length < TAG_SIZE + (index === 0 ? 0 : 1)) {
      throw new TruncatedError(`object ends inside chunk ${index} (${stored.length} bytes, shorter than a tag): it was truncated`, { chunkIndex: index });
    }
  }
}
