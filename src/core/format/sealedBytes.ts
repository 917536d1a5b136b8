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
import type { SegmentIdentity } from '../objectKeys.ts';
import { ChunkCipher, TAG_SIZE } from './chunkCipher.ts';
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

  constructor(options: SealOptions) {
    this.header = encodeHeader(options.chunkLog2 ?? DEFAULT_CHUNK_LOG2, options.key.keyId, options.salt ?? randomBytes(SALT_SIZE));
    this.#cipher = new ChunkCipher(options.key.master, this.header, options.identity);
    this.#plaintext = options.plaintext;
    this.#plaintextSize = options.plaintextSize;
    this.#chunks = chunkCount(options.plaintextSize, this.header.chunkLog2);
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
    const got = await this.#plaintext.read(plain);
    if (got < size) throw new TruncatedError(`plaintext ended inside chunk ${index} (${got} of ${size} bytes)`, { chunkIndex: index });
    const last = index === this.#chunks - 1;
    if (target.length - offset >= size + TAG_SIZE) return this.#cipher.sealInto(index, last, plain, target, offset);
    const sealed = this.#sealed.subarray(0, this.#cipher.sealInto(index, last, plain, this.#sealed, 0));
    const n = sealed.copy(target, offset);
    this.#carry = sealed.subarray(n);
    return n;
  }
}
