/**
 * Reads the chunks of one object from its stored bytes, for decryptStream.ts. Bytes are fed as they arrive and
 * each chunk's ciphertext is deciphered as it arrives, in small pieces (CIPHER_PIECE): no chunk-sized buffer
 * is assembled or allocated, which cost more CPU (fresh pages the kernel faults in) than the decryption. A
 * chunk's plaintext pieces are held until its tag verified, then handed out: nothing unauthenticated is
 * released. Two layouts:
 * - sized: the plaintext size is known (object metadata), so every chunk's size is too, and a stream that ends
 *   short is TruncatedError even mid-chunk; it may hold only a range's chunk span;
 * - unsized: the last chunk is known only when the stream ends, so a full chunk is verified as a middle chunk
 *   only once a byte beyond it arrived (the mirror of the writer); its ciphertext is deciphered as a middle
 *   chunk meanwhile and copied into one reused buffer, so that the final chunk can be opened again as the
 *   last one.
 * Neither keeps the buffers it is fed: a caller may reuse its read buffer as soon as `read` returns.
 */
import type { DecipherGCM } from 'node:crypto';
import { AuthenticationError, TruncatedError } from '../errors.ts';
import { CIPHER_PIECE, TAG_SIZE, type ChunkCipher } from './chunkCipher.ts';
import { chunkCount, chunkPlainSize, type RangePlan } from './layout.ts';

/** The plaintext bytes start..end (end exclusive) that the stream delivers. */
interface Window {
  readonly start: number;
  readonly end: number;
}

/** The chunk being read: its deciphered pieces wait for its tag. */
class OpeningChunk {
  readonly #decipher: DecipherGCM;
  readonly #cipherSize: number;
  readonly #tag = Buffer.alloc(TAG_SIZE);
  readonly #plain: Buffer[] = [];
  /** A copy of the stored bytes (unsized reader only: the last chunk is opened again from them). */
  readonly #stored: Buffer | undefined;
  received = 0;

  constructor(
    cipher: ChunkCipher,
    readonly index: number,
    readonly last: boolean,
    /** Bytes of the sealed chunk: ciphertext and tag. */
    readonly sealedSize: number,
    stored?: Buffer,
  ) {
    this.#decipher = cipher.decipherFor(index, last);
    this.#cipherSize = sealedSize - TAG_SIZE;
    this.#stored = stored;
  }

  get full(): boolean {
    return this.received === this.sealedSize;
  }

  /** Takes the bytes of this chunk from `data` at `offset`; returns how many it took. */
  take(data: Buffer, offset: number): number {
    const n = Math.min(data.length - offset, this.sealedSize - this.received);
    const bytes = data.subarray(offset, offset + n);
    if (this.#stored !== undefined) bytes.copy(this.#stored, this.received);
    const cipherBytes = Math.max(0, Math.min(n, this.#cipherSize - this.received));
    for (let from = 0; from < cipherBytes; from += CIPHER_PIECE) {
      this.#plain.push(this.#decipher.update(bytes.subarray(from, Math.min(cipherBytes, from + CIPHER_PIECE))));
    }
    if (n > cipherBytes) bytes.copy(this.#tag, this.received + cipherBytes - this.#cipherSize, cipherBytes);
    this.received += n;
    return n;
  }

  /** The plaintext pieces once the tag verified (call when full); undefined if it does not. */
  verify(): Buffer[] | undefined {
    try {
      this.#decipher.setAuthTag(this.#tag);
      this.#decipher.final();
      return this.#plain;
    } catch {
      return undefined; // the tag did not verify: nothing of this chunk may be used
    }
  }

  /** The stored bytes received (unsized reader: the final chunk, opened again). */
  stored(): Buffer {
    return this.#stored?.subarray(0, this.received) ?? Buffer.alloc(0);
  }
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

  /** Feeds stored bytes; appends to `out` the plaintext of every chunk that verified. AuthenticationError if a
   *  tag does not verify, or if bytes follow the last chunk (the chunks before it are in `out` by then). */
  abstract read(data: Buffer, out: Buffer[]): void;

  /** At the end of the stream: opens what is left into `out`, or throws TruncatedError naming the first chunk missing. */
  abstract finish(out: Buffer[]): void;

  /** Counts the next chunk as read; returns the parts of its (authenticated) plaintext inside the window. */
  protected release(pieces: readonly Buffer[], out: Buffer[]): void {
    let offset = this.#next++ * this.chunkSize;
    for (const piece of pieces) {
      const from = Math.max(0, this.window.start - offset);
      const to = Math.min(piece.length, this.window.end - offset);
      if (to > from) out.push(from === 0 && to === piece.length ? piece : piece.subarray(from, to));
      offset += piece.length;
    }
  }
}

/** The plaintext size is known: each chunk's size is exact. */
export class SizedChunkReader extends ChunkReader {
  readonly #plaintextSize: number;
  readonly #totalChunks: number;
  /** One past the last chunk this stream holds. */
  readonly #endChunk: number;
  #current: OpeningChunk | undefined;

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

  override read(data: Buffer, out: Buffer[]): void {
    for (let offset = 0; offset < data.length; ) {
      if (this.done) throw new AuthenticationError(this.nextChunk); // bytes after the final chunk
      const chunk = (this.#current ??= this.#open());
      offset += chunk.take(data, offset);
      if (!chunk.full) break;
      const plain = chunk.verify();
      if (plain === undefined) throw new AuthenticationError(chunk.index);
      this.#current = undefined;
      this.release(plain, out);
    }
  }

  override finish(): void {
    if (!this.done) {
      const index = this.nextChunk;
      throw new TruncatedError(`object ends inside or before chunk ${index} (${this.#current?.received ?? 0} bytes of it): it was truncated`, { chunkIndex: index });
    }
  }

  #open(): OpeningChunk {
    const index = this.nextChunk;
    const last = index === this.#totalChunks - 1;
    return new OpeningChunk(this.cipher, index, last, chunkPlainSize(this.#plaintextSize, this.chunkLog2, index) + TAG_SIZE);
  }
}

/** The plaintext size is unknown: the last chunk is the one the stream ends with. */
export class UnsizedChunkReader extends ChunkReader {
  #finalOpened = false;
  #current: OpeningChunk | undefined;
  /** The stored bytes of the chunk being read, copied (allocated once, reused chunk after chunk). */
  #stored: Buffer | undefined;

  constructor(cipher: ChunkCipher, chunkLog2: number) {
    super(cipher, chunkLog2, 0, { start: 0, end: Number.POSITIVE_INFINITY });
  }

  override get done(): boolean {
    return this.#finalOpened;
  }

  override read(data: Buffer, out: Buffer[]): void {
    for (let offset = 0; offset < data.length; ) {
      let chunk = (this.#current ??= this.#open());
      if (chunk.full) {
        // A byte beyond a full chunk arrived: it was a middle chunk.
        const plain = chunk.verify();
        if (plain === undefined) throw new AuthenticationError(chunk.index);
        this.release(plain, out);
        chunk = this.#current = this.#open();
      }
      offset += chunk.take(data, offset);
    }
  }

  override finish(out: Buffer[]): void {
    const plain = openFinalChunk(this.cipher, this.nextChunk, this.#current?.stored() ?? Buffer.alloc(0), this.chunkSize);
    this.#finalOpened = true;
    this.release([plain], out);
  }

  /** A chunk, deciphered as a middle chunk until the stream says otherwise. */
  #open(): OpeningChunk {
    this.#stored ??= Buffer.allocUnsafe(this.chunkSize + TAG_SIZE);
    return new OpeningChunk(this.cipher, this.nextChunk, false, this.chunkSize + TAG_SIZE, this.#stored);
  }
}

/**
 * The plaintext of chunk `index` of an object whose size was unknown, `sealed` being every stored byte after
 * chunk index - 1: it must verify as the last chunk. TruncatedError when it cannot be a final chunk (nothing,
 * or less than a tag and a byte) or when it is a full chunk that verifies only as a middle one (the object was
 * cut at a chunk boundary); AuthenticationError otherwise.
 */
export function openFinalChunk(cipher: ChunkCipher, index: number, sealed: Buffer, chunkSize: number): Buffer {
  if (sealed.length === 0) {
    const where = index === 0 ? 'object holds a header but no chunk' : `object ends at a chunk boundary after chunk ${index - 1} without its final chunk`;
    throw new TruncatedError(`${where}: it was truncated`, { chunkIndex: index });
  }
  if (sealed.length < TAG_SIZE + (index === 0 ? 0 : 1)) {
    throw new TruncatedError(`object ends inside chunk ${index} (${sealed.length} bytes, shorter than a tag): it was truncated`, { chunkIndex: index });
  }
  const plain = cipher.open(index, true, sealed);
  if (plain !== undefined) return plain;
  if (sealed.length === chunkSize + TAG_SIZE && cipher.open(index, false, sealed) !== undefined) {
    // A full chunk that verifies only as a middle chunk: the object was cut at a chunk boundary. Its bytes
    // are authentic, but the stream fails here all the same.
    throw new TruncatedError(`object ends at a chunk boundary after chunk ${index} without its final chunk: it was truncated`, { chunkIndex: index + 1 });
  }
  throw new AuthenticationError(index);
}
