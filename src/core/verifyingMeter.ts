/**
 * The last check before bytes move on (to a restore destination, or into an upload): counts and hashes what passes and, when the stream ends,
 * compares it with what the object's metadata promised. Because the check runs in `flush`, a destination sees
 * the end of its input only when every byte was authenticated (format v1) or matched the stored SHA-256
 * (`plain`): a file is renamed into place, or a multipart upload completed, only then.
 */
import type { TransformCallback } from 'node:stream';
import { Sha256Meter } from './sha256Meter.ts';
import { IntegrityError, TruncatedError } from './errors.ts';

export interface Expectation {
  /** Bytes that must pass. */
  readonly size: number;
  /** Hex SHA-256 they must have (plain objects, whole restores; uploads). */
  readonly sha256?: string | undefined;
  /** What that digest is, for the message (default: the stored bks-sha256). */
  readonly sha256Of?: string;
  /**
   * Asked once, as the first byte arrives (or at the end when none does): the bytes' SHA-256 when it is known
   * without hashing them (a whole restore of a format v1 object whose bks-digest opened under its header:
   * sealedDigest.ts); the meter then only counts. Never together with `sha256`.
   */
  readonly knownSha256?: () => string | undefined;
  /** Names the object in error messages. */
  readonly what: string;
}

export class VerifyingMeter extends Sha256Meter {
  #asked = false;
  constructor(private readonly expected: Expectation) {
    super();
    if (expected.sha256 !== undefined && expected.knownSha256 !== undefined) throw new Error('VerifyingMeter: a digest to check and a known digest exclude each other');
  }
  /** Adopts the known digest, if any, before the first byte (see Expectation.knownSha256). */
  #askKnown(): void {
    if (this.#asked) return;
    this.#asked = true;
    const known = this.expected.knownSha256?.();
    if (known !== undefined) this.adoptDigest(known);
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, done: TransformCallback): void {
    this.#askKnown();
    if (this.bytes + chunk.length > this.expected.size) {
      done(new IntegrityError('size', String(this.expected.size), `more than ${this.expected.size} bytes`, this.expected.what));
      return;
    }
    super._transform(chunk, enc, done);
  }
  override _flush(done: TransformCallback): void {
    this.#askKnown();
    super._flush((err) => {
      if (err) return done(err);
      if (this.bytes < this.expected.size) {
        return done(new TruncatedError(`${this.expected.what}: ended after ${this.bytes} of ${this.expected.size} bytes: it was truncated`));
      }
      if (this.expected.sha256 !== undefined && this.sha256 !== this.expected.sha256) {
        return done(new IntegrityError('sha256', this.expected.sha256, this.sha256, `${this.expected.what} (${this.expected.sha256Of ?? 'stored bks-sha256'})`));
      }
      done();
    });
  }
}
