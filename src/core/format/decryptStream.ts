/**
 * The reader of format v1 (docs/FORMAT.md): header then sealed chunks in, plaintext out; the mirror of
 * encryptStream.ts. It holds about two chunks, whatever the object's size, and releases a chunk's plaintext
 * only after its tag verified, so a failing stream never releases unauthenticated bytes.
 *
 * States: awaiting the header → reading chunks (chunkReader.ts: deciphered as they arrive, released once
 * verified) → finished (any byte more is refused). Only the header is queued; chunk bytes are never copied.
 */
import { readSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { AuthenticationError, InvalidRangeError, MalformedHeaderError, TruncatedError } from '../errors.ts';
import type { KeyRing } from '../keyRing.ts';
import type { SegmentIdentity } from '../objectKeys.ts';
import { ByteQueue } from './byteQueue.ts';
import type { GcmThreads } from './gcmThreads.ts';
import { ChunkCipher, TAG_SIZE } from './chunkCipher.ts';
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

/** Where openInParallel reads: the stored object is the `size` bytes of a file from `start`. */
export interface StoredFile {
  readonly fd: number;
  readonly start: number;
  readonly size: number;
}

/**
 * The plaintext of a whole stored object in a file (format v1), as verified chunks in order, chunks read and
 * opened on the worker threads of `gcm` at once (gcmThreads.ts; the caller starts and closes them): the
 * Decryptor's checks and errors, for the CLI's decrypt of a file, where the cores rather than the memory are the
 * limit. As for a stream, the last chunk is the one the object ends with. A chunk is yielded only after it and
 * every chunk before it verified. Each buffer yielded is valid only until the next is asked for (a slot later
 * chunks are opened into). Memory: 2 chunks per thread, and the last one.
 */
export async function* openInParallel(file: StoredFile, options: Pick<DecryptOptions, 'keyRing' | 'identity'>, gcm: GcmThreads): AsyncGenerator<Buffer> {
  const raw = Buffer.alloc(Math.max(0, Math.min(HEADER_SIZE, file.size)));
  const got = readFully(file.fd, raw, file.start);
  if (got < HEADER_SIZE) throw headerCutShort(got);
  const header = parseHeader(raw);
  const cipher = new ChunkCipher(options.keyRing.find(header.keyId).master, header, options.identity);
  const chunkSize = 2 ** header.chunkLog2;
  const stored = chunkSize + TAG_SIZE;
  const body = file.size - HEADER_SIZE;
  gcm.setSlots(chunkSize);
  // Every chunk followed by at least one byte is a middle chunk; the rest is the last one.
  const middles = Math.max(0, Math.ceil(body / stored) - 1);
  function* jobs(): Generator<(slot: number) => Promise<Buffer>> {
    for (let index = 0; index < middles; index++) {
      const region = { fd: file.fd, position: file.start + HEADER_SIZE + index * stored, length: stored };
      yield (slot) =>
        gcm.open(slot, region, cipher.params(index, false)).then(({ read, output }) => {
          if (read < stored) throw new TruncatedError(`object ended inside chunk ${index} while it was read (${read} of ${stored} bytes): it was truncated`, { chunkIndex: index });
          if (output === undefined) throw new AuthenticationError(index);
          return output;
        });
    }
  }
  yield* gcm.inOrder(jobs());
  const last = Buffer.alloc(Math.max(0, body - middles * stored));
  const n = readFully(file.fd, last, file.start + HEADER_SIZE + middles * stored);
  yield openFinalChunk(cipher, middles, last.subarray(0, n), chunkSize);
}

/** Reads `target.length` bytes of `fd` from `position` (fewer only at the file's end); the count. */
function readFully(fd: number, target: Buffer, position: number): number {
  let filled = 0;
  for (let n = 1; filled < target.length && n > 0; filled += n) n = readSync(fd, target, filled, target.length - filled, position + filled);
  return filled;
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
