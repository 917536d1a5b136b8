/**
 * The writer of format v1 (docs/FORMAT.md): plaintext in, header then sealed chunks out. It holds at most two
 * chunks, whatever the object's size. Its mirror is decryptStream.ts.
 */
import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { KeyEntry } from '../keyRing.ts';
import type { SegmentIdentity } from '../objectKeys.ts';
import { ByteQueue } from './byteQueue.ts';
import { ChunkCipher } from './chunkCipher.ts';
import { DEFAULT_CHUNK_LOG2, encodeHeader, SALT_SIZE, type Header } from './header.ts';

export interface EncryptOptions {
  readonly key: KeyEntry;
  readonly identity: SegmentIdentity;
  readonly chunkLog2?: number;
  /** Fixed salt for golden vectors only; random per object otherwise. */
  readonly salt?: Buffer;
}

/** A Transform from plaintext to format v1; `header` is known up front (uploads store it as metadata for ranged reads). */
export class EncryptStream extends Transform {
  readonly header: Header;
  readonly #cipher: ChunkCipher;
  readonly #chunkSize: number;
  readonly #plain = new ByteQueue();
  #headerSent = false;
  #index = 0;

  constructor(options: EncryptOptions) {
    const header = encodeHeader(options.chunkLog2 ?? DEFAULT_CHUNK_LOG2, options.key.keyId, options.salt ?? randomBytes(SALT_SIZE));
    const chunkSize = 2 ** header.chunkLog2;
    super({ readableHighWaterMark: chunkSize, writableHighWaterMark: chunkSize });
    this.header = header;
    this.#chunkSize = chunkSize;
    this.#cipher = new ChunkCipher(options.key.master, header, options.identity);
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#sendHeader();
    this.#plain.push(data);
    // A full chunk is held back until a byte beyond it arrives: only then is it known not to be the last.
    while (this.#plain.length > this.#chunkSize) this.#seal(this.#plain.take(this.#chunkSize), false);
    done();
  }

  override _flush(done: TransformCallback): void {
    this.#sendHeader();
    this.#seal(this.#plain.takeAll(), true); // an empty plaintext is one empty chunk
    done();
  }

  #sendHeader(): void {
    if (this.#headerSent) return;
    this.push(this.header.raw);
    this.#headerSent = true;
  }

  #seal(plain: Buffer, last: boolean): void {
    for (const part of this.#cipher.seal(this.#index++, last, plain)) this.push(part);
  }
}

/** A Transform from plaintext to format v1. Memory: about two chunks. */
export function createEncryptStream(options: EncryptOptions): EncryptStream {
  return new EncryptStream(options);
}
