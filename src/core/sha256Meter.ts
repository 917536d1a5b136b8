/**
 * The plaintext's SHA-256 and size, computed while streaming: checked against announcements, stored as
 * metadata when encryption is off, and the base of VerifyingMeter.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** A pass-through that counts bytes and hashes them with SHA-256; read `sha256`/`bytes` after 'end'. */
export class Sha256Meter extends Transform {
  /** Undefined once a subclass adopted a digest known without hashing (adoptDigest). */
  #hash: Hash | undefined = createHash('sha256');
  #known: string | undefined;
  #digest: string | undefined;
  bytes = 0;
  constructor() {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#hash?.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    this.#digest = this.#hash?.digest('hex') ?? this.#known;
    done();
  }
  /** Before the first byte: `sha256` will be this digest, and the bytes are counted, not hashed. */
  protected adoptDigest(sha256: string): void {
    if (this.bytes > 0) throw new Error('Sha256Meter: a known digest must be adopted before the first byte');
    this.#hash = undefined;
    this.#known = sha256;
  }
  /** Lowercase hex SHA-256 of every byte that passed; throws if read before the stream ended. */
  get sha256(): string {
    if (this.#digest === undefined) throw new Error('Sha256Meter: digest read before the stream ended');
    return this.#digest;
  }
}
