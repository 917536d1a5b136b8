/**
 * The reader of format v1 (docs/FORMAT.md): header then sealed chunks in, plaintext out; the mirror of
 * encryptStream.ts. It holds about two chunks, whatever the object's size, and releases a chunk's plaintext
 * only after its tag verified, so a failing stream never releases unauthenticated bytes.
 *
 * States: awaiting the header → reading chunks (chunkReader.ts: deciphered as they arrive, released once
 * verified) → finished (any byte more is refused). Only the header is queued; chunk bytes are never copied.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { AuthenticationError, InvalidRangeError, MalformedHeaderError } from '../errors.ts';
import type { ByteSource } from '../byteSource.ts';
import type { KeyRing } from '../keyRing.ts';
import type { SegmentIdentity } from '../objectKeys.ts';
import { ByteQueue } from './byteQueue.ts';
import { GcmThreads } from './gcmThreads.ts';
import { ChunkCipher } from './chunkCipher.ts';
import { openFinalChunk, SizedChunkReader, UnsizedChunkReader, type ChunkReader } from './chunkReader.ts';
import { HEADER_SIZE, parseHeader, type Header } from './header.ts';
import type { RangePlan } from './layout.ts';

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

/** What the stream reads next: the header, the chunks (with the reader of this object's chunks), or nothing more. */
type State =
  | { readonly name: 'awaitingHeader' }
  | { readonly name: 'readingChunks'; readonly chunks: ChunkReader }
  | { readonly name: 'finished'; readonly chunks: ChunkReader };

/**
 * The reader of format v1 without a stream around it: stored bytes in (`update`, then `final` at their end),
 * plaintext pieces out, each piece released only once its chunk's tag verified. It keeps none of the buffers
 * it is fed, so a caller may read into one reused buffer (the CLI does). Fails with MalformedHeaderError,
 * UnknownKeyIdError, TruncatedError or AuthenticationError.
 */
export class Decryptor {
  readonly #options: DecryptOptions;
  readonly #stored = new ByteQueue();
  #state: State = { name: 'awaitingHeader' };

  constructor(options: DecryptOptions) {
    if (options.range !== undefined && (options.plaintextSize === undefined || options.header === undefined)) {
      throw new InvalidRangeError('a ranged decrypt needs the header and the plaintext size of the object');
    }
    this.#options = options;
  }

  /** Appends to `out` the plaintext of every chunk that `data` completes and that verified (those before a
   *  failing chunk are appended before it throws). */
  update(data: Buffer, out: Buffer[]): void {
    this.#advance(data, false, out);
  }

  /** At the end of the stored bytes: appends the plaintext left to `out`, or throws what the end is. */
  final(out: Buffer[]): void {
    this.#advance(undefined, true, out);
  }

  /** Moves through the states with `data` (the bytes that arrived); `ended`: no byte more will come. */
  #advance(data: Buffer | undefined, ended: boolean, out: Buffer[]): void {
    let rest = data;
    if (this.#state.name === 'awaitingHeader') {
      // Only the header's own bytes are queued (copied: the caller's buffer is not kept); the rest goes on.
      if (rest !== undefined && this.#options.header === undefined) {
        const need = Math.min(rest.length, HEADER_SIZE - this.#stored.length);
        this.#stored.push(Buffer.from(rest.subarray(0, need)));
        rest = rest.subarray(need);
      }
      this.#state = this.#readHeader(ended);
    }
    if (this.#state.name === 'readingChunks') {
      const { chunks } = this.#state;
      if (rest !== undefined && rest.length > 0) chunks.read(rest, out);
      if (ended) chunks.finish(out);
      this.#state = chunks.done ? { name: 'finished', chunks } : { name: 'readingChunks', chunks };
    } else if (this.#state.name === 'finished' && rest !== undefined && rest.length > 0) {
      // Bytes after the final chunk are not part of the object: they fail as the chunk after it.
      throw new AuthenticationError(this.#state.chunks.nextChunk);
    }
  }

  /** The header from the options (ranged reads) or the first 48 bytes; MalformedHeaderError if the stream ends first. */
  #readHeader(ended: boolean): State {
    const raw = this.#options.header ?? (this.#stored.length >= HEADER_SIZE ? this.#stored.take(HEADER_SIZE) : undefined);
    if (raw === undefined) {
      if (ended) throw headerCutShort(this.#stored.length);
      return { name: 'awaitingHeader' };
    }
    const header = parseHeader(raw);
    const chunks = this.#chunkReaderFor(header);
    this.#options.onHeader?.(header);
    return { name: 'readingChunks', chunks };
  }

  /** The reader of this object's chunks: the key chosen by the header's key id (UnknownKeyIdError if none). */
  #chunkReaderFor(header: Header): ChunkReader {
    const { keyRing, identity, plaintextSize, range } = this.#options;
    const cipher = new ChunkCipher(keyRing.find(header.keyId).master, header, identity);
    if (plaintextSize === undefined) return new UnsizedChunkReader(cipher, header.chunkLog2);
    return new SizedChunkReader(cipher, header.chunkLog2, plaintextSize, range);
  }
}

/**
 * A Transform from format v1 (whole, or a RangePlan's chunk span) to plaintext (a Decryptor in a stream).
 * Fails with MalformedHeaderError, UnknownKeyIdError, TruncatedError or AuthenticationError; nothing of a
 * chunk that fails is pushed.
 */
export class DecryptStream extends Transform {
  readonly #decryptor: Decryptor;

  constructor(options: DecryptOptions) {
    const decryptor = new Decryptor(options);
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.#decryptor = decryptor;
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    settle(done, (out) => this.#decryptor.update(data, out), this);
  }

  override _flush(done: TransformCallback): void {
    settle(done, (out) => this.#decryptor.final(out), this);
  }
}

/**
 * The plaintext of a whole stored object (format v1, size unknown: the last chunk is the one `source` ends
 * with), as verified chunks in order, chunks opened on `threads` worker threads at once (gcmThreads.ts): the
 * Decryptor's checks and errors, for the CLI's decrypt of a file, where the cores rather than the memory are
 * the limit. A chunk is yielded only after it and every chunk before it verified. Each buffer yielded is valid
 * only until the next is asked for (a slot later chunks are opened into). Memory: 2 × `threads` + 1 chunk
 * slots, in and out.
 */
export async function* openInParallel(source: ByteSource, options: Pick<DecryptOptions, 'keyRing' | 'identity'>, threads: number): AsyncGenerator<Buffer> {
  const raw = Buffer.allocUnsafe(HEADER_SIZE);
  const got = await source.read(raw);
  if (got < HEADER_SIZE) throw headerCutShort(got);
  const header = parseHeader(raw);
  const cipher = new ChunkCipher(options.keyRing.find(header.keyId).master, header, options.identity);
  const chunkSize = 2 ** header.chunkLog2;
  // Chunk i is read into slot i % slots. Meanwhile chunk i - 1 is held (not yet sent: whether it is the last is
  // known only now) and at most slots - 2 chunks before it are pending: the slot's previous user, chunk
  // i - slots, was yielded, and the caller is done with it since it asked for the next buffer.
  const slots = 2 * threads + 1;
  const gcm = new GcmThreads(threads, slots, chunkSize);
  const pending: { readonly index: number; readonly opening: Promise<Buffer | undefined> }[] = [];
  const opened = async (): Promise<Buffer> => {
    const { index, opening } = pending.shift() ?? { index: -1, opening: Promise.reject(new Error('no chunk pending')) };
    const plain = await opening;
    if (plain === undefined) throw new AuthenticationError(index);
    return plain;
  };
  try {
    let index = 0;
    let held = gcm.input(0);
    let heldBytes = await source.read(held);
    while (heldBytes === held.length) {
      const next = gcm.input((index + 1) % slots);
      const n = await source.read(next);
      if (n === 0) break; // the full chunk held is the final one
      // A byte beyond a full chunk: it was a middle chunk.
      const opening = gcm.open(index % slots, heldBytes, cipher.params(index, false));
      opening.catch(() => undefined); // handled where it is awaited; this only keeps an early failure from being "unhandled"
      pending.push({ index: index++, opening });
      if (pending.length === slots - 1) yield await opened();
      [held, heldBytes] = [next, n];
    }
    while (pending.length > 0) yield await opened();
    yield openFinalChunk(cipher, index, held.subarray(0, heldBytes), chunkSize);
  } finally {
    await gcm.close();
  }
}

/** The error of a stored object that ends before its header does. */
function headerCutShort(bytes: number): MalformedHeaderError {
  return new MalformedHeaderError(`stream ended after ${bytes} bytes, before the ${HEADER_SIZE}-byte header`);
}

/** A Transform from format v1 to plaintext (see DecryptStream). */
export function createDecryptStream(options: DecryptOptions): DecryptStream {
  return new DecryptStream(options);
}

/** Runs one step of the stream, pushes its plaintext and reports its outcome to `done`: a thrown error fails
 *  the stream (after the pieces of the chunks that verified before it). */
function settle(done: TransformCallback, step: (out: Buffer[]) => void, stream: Transform): void {
  const out: Buffer[] = [];
  let failure: Error | undefined;
  try {
    step(out);
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
  }
  for (const piece of out) if (piece.length > 0) stream.push(piece);
  done(failure);
}
