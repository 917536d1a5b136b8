/**
 * The writer of format v1 (docs/FORMAT.md) for a plaintext of known size, pulled rather than streamed: header
 * then sealed chunks, written straight into the buffers the caller reads into (the parts of an upload, see
 * src/core/byteSource.ts). The same bytes as encryptStream.ts; because the size is known, the last chunk is
 * known without holding one back. Memory: one plaintext chunk, and one sealed chunk for the chunk that
 * straddles two reads, reused throughout.
 */
import { randomBytes } from 'node:crypto';
import type { ByteSource } from '../byteSource.ts';
import { TruncatedError } from '../errors.ts';
import type { KeyEntry } from '../keyRing.ts';
import { GARBAGE_BETWEEN_SCAVENGES, YoungGarbage } from '../youngGarbage.ts';
import type { SegmentIdentity } from '../objectKeys.ts';
import { ChunkCipher, TAG_SIZE } from './chunkCipher.ts';
import type { GcmThreads } from './gcmThreads.ts';
import { DEFAULT_CHUNK_LOG2, encodeHeader, SALT_SIZE, type Header } from './header.ts';
import { chunkCount, chunkPlainSize, ciphertextSize } from './layout.ts';

export interface SealOptions {
  readonly key: KeyEntry;
  readonly identity: SegmentIdentity;
  readonly chunkLog2?: number;
  /** Fixed salt for golden vectors only; random per object otherwise. */
  readonly salt?: Buffer;
  /** The plaintext, and its size in bytes (a source that ends short is TruncatedError). */
  readonly plaintext: ByteSource;
  readonly plaintextSize: number;
}

/** A ByteSource of the stored object: header, then every chunk sealed. */
export class SealedBytes implements ByteSource {
  readonly header: Header;
  /** Bytes of the stored object. */
  readonly storedSize: number;
  readonly #cipher: ChunkCipher;
  readonly #plaintext: ByteSource;
  readonly #plaintextSize: number;
  readonly #chunks: number;
  readonly #plain: Buffer;
  /** A sealed chunk that did not fit the last target, and the part of it still to hand out. */
  readonly #sealed: Buffer;
  #carry: Buffer;
  #next = 0;
  /** The cipher's output pieces of each chunk are garbage once copied into the target. */
  readonly #garbage = new YoungGarbage(GARBAGE_BETWEEN_SCAVENGES);

  constructor(options: SealOptions) {
    ({ header: this.header, cipher: this.#cipher, chunks: this.#chunks } = begin(options));
    this.#plaintext = options.plaintext;
    this.#plaintextSize = options.plaintextSize;
    this.storedSize = ciphertextSize(options.plaintextSize, this.header.chunkLog2);
    const chunkSize = 2 ** this.header.chunkLog2;
    this.#plain = Buffer.allocUnsafe(Math.min(chunkSize, options.plaintextSize));
    this.#sealed = Buffer.allocUnsafe(Math.min(chunkSize, options.plaintextSize) + TAG_SIZE);
    this.#carry = this.header.raw; // the header goes first
  }

  async read(target: Buffer): Promise<number> {
    let filled = 0;
    while (filled < target.length) {
      if (this.#carry.length > 0) {
        const n = this.#carry.copy(target, filled);
        this.#carry = this.#carry.subarray(n);
        filled += n;
      } else if (this.#next < this.#chunks) {
        filled += await this.#sealNext(target, filled);
      } else break;
    }
    return filled;
  }

  /** Reads and seals the next chunk into `target` at `offset` (or, when it does not fit, into the carry). */
  async #sealNext(target: Buffer, offset: number): Promise<number> {
    const index = this.#next++;
    const size = chunkPlainSize(this.#plaintextSize, this.header.chunkLog2, index);
    const plain = this.#plain.subarray(0, size);
    await readChunk(this.#plaintext, plain, index);
    const last = index === this.#chunks - 1;
    this.#garbage.made(size);
    if (target.length - offset >= size + TAG_SIZE) return this.#cipher.sealInto(index, last, plain, target, offset);
    const sealed = this.#sealed.subarray(0, this.#cipher.sealInto(index, last, plain, this.#sealed, 0));
    const n = sealed.copy(target, offset);
    this.#carry = sealed.subarray(n);
    return n;
  }
}

/** What sealInParallel seals: the plaintext is `plaintextSize` bytes of a file from `start`. */
export interface FileSealOptions extends Omit<SealOptions, 'plaintext'> {
  readonly file: { readonly fd: number; readonly start: number };
}

/**
 * The stored object as buffers (the header, then each sealed chunk, in order), chunks read from the file and
 * sealed on the worker threads of `gcm` at once (gcmThreads.ts; the caller starts and closes them): the same
 * bytes as SealedBytes, for the CLI's encrypt of a file, where the cores rather than the memory are the limit.
 * Each buffer yielded is valid only until the next is asked for (it is a slot later chunks are sealed into).
 * TruncatedError when the file ends before `plaintextSize`. Memory: 2 sealed chunks per thread.
 */
export async function* sealInParallel(options: FileSealOptions, gcm: GcmThreads): AsyncGenerator<Buffer> {
  const { header, cipher, chunks } = begin(options);
  const chunkSize = 2 ** header.chunkLog2;
  gcm.setSlots(Math.min(chunkSize, options.plaintextSize));
  function* jobs(): Generator<(slot: number) => Promise<Buffer>> {
    for (let index = 0; index < chunks; index++) {
      const length = chunkPlainSize(options.plaintextSize, header.chunkLog2, index);
      const region = { fd: options.file.fd, position: options.file.start + index * chunkSize, length };
      yield (slot) =>
        gcm.seal(slot, region, cipher.params(index, index === chunks - 1)).then(({ read, output }) => {
          if (output === undefined) throw new TruncatedError(`plaintext ended inside chunk ${index} (${read} of ${length} bytes)`, { chunkIndex: index });
          return output;
        });
    }
  }
  yield header.raw;
  yield* gcm.inOrder(jobs());
}

/** The header (salt random unless given), the cipher and the number of chunks of the object to seal. */
function begin(options: Omit<SealOptions, 'plaintext'>): { header: Header; cipher: ChunkCipher; chunks: number } {
  const header = encodeHeader(options.chunkLog2 ?? DEFAULT_CHUNK_LOG2, options.key.keyId, options.salt ?? randomBytes(SALT_SIZE));
  return { header, cipher: new ChunkCipher(options.key.master, header, options.identity), chunks: chunkCount(options.plaintextSize, header.chunkLog2) };
}

/** Fills `plain` with chunk `index` of the plaintext; TruncatedError if the source ends first. */
async function readChunk(plaintext: ByteSource, plain: Buffer, index: number): Promise<void> {
  const got = await plaintext.read(plain);
  if (got < plain.length) throw new TruncatedError(`plaintext ended inside chunk ${index} (${got} of ${plain.length} bytes)`, { chunkIndex: index });
}
