/**
 * Streams a segment into its object: source → SHA-256 and size check (VerifyingMeter) → format v1 encryption
 * (unless `off`) → multipart upload with a CRC32 additional checksum, SSE-KMS when a key ARN is set.
 *
 * The expected sha256 (the announcement's, or with encryption `off` the digest that goes into bks-sha256) is
 * checked in the meter's flush, before the body ends, so a mismatch (a wrong announcement, or a source that
 * changed while it was read) errors the body and lib-storage aborts the multipart upload: no object appears.
 * A crash mid-upload leaves no object either (S3 shows a multipart object only on CompleteMultipartUpload), so
 * a redelivery starts clean. With an announced sha256, a format v1 object carries bks-mac (digestMac.ts).
 *
 * Write once, enforced by S3: the object is created with If-None-Match: * (PutObject, and CompleteMultipartUpload,
 * to which lib-storage passes its params on), so it never overwrites an object: when a twin delivery of the same
 * announcement created the key first, S3 answers 412 and the write ends as 'key-taken' (the caller then checks
 * the object there as it checks any already-stored copy).
 */
import { pipeline, type Readable } from 'node:stream';
import type { Config } from '../core/config.ts';
import { digestMac } from '../core/digestMac.ts';
import { StorageError } from '../core/errors.ts';
import type { KeyEntry, KeyRing } from '../core/keyRing.ts';
import { decodeObjectMetadata, encodeObjectMetadata } from '../core/objectMetadata.ts';
import type { SegmentIdentity } from '../core/objectKeys.ts';
import { isConditionFailure, type BucketRef, type S3Store } from '../core/s3Store.ts';
import { ciphertextSize, createEncryptStream, type EncryptStream } from '../core/format/index.ts';
import { VerifyingMeter } from '../core/verifyingMeter.ts';
import type { SegmentSource } from './source.ts';
import type { Written } from './readBack.ts';

export interface WriteRuntime {
  readonly config: Pick<Config, 'chunkLog2' | 'kmsKeyArn' | 'partSize' | 'transferConcurrency'>;
  readonly keyRing: Pick<KeyRing, 'current'>;
  readonly store: Pick<S3Store, 'head' | 'put'>;
}

export interface WriteRequest {
  readonly target: BucketRef;
  readonly key: string;
  readonly identity: SegmentIdentity;
  readonly source: SegmentSource;
  /** The announcement's SHA-256, checked before the upload completes. */
  readonly sha256: string | undefined;
  /** Names the segment in errors. */
  readonly what: string;
}

/**
 * What a write did: 'written' (with the plaintext's SHA-256, computed while streaming), or 'key-taken' when S3
 * refused it because the key exists (with the SHA-256 of the content it tried to write, when it read it whole).
 */
export type WrittenObject = (Written & { readonly outcome: 'written'; readonly sha256: string }) | { readonly outcome: 'key-taken'; readonly sha256: string | undefined };

/** Writes the segment's object in `request.target`; rejects leaving no object. */
export async function writeSegmentObject(runtime: WriteRuntime, request: WriteRequest): Promise<WrittenObject> {
  const { source, what } = request;
  const current = runtime.keyRing.current;
  const encrypt = current === undefined ? undefined : createEncryptStream({ key: current, identity: request.identity, chunkLog2: runtime.config.chunkLog2 });
  // With encryption off the plaintext digest goes into the metadata, which S3 takes before the first byte: the
  // announced sha256 when given, otherwise a first pass over the source computes it.
  const plainSha = encrypt === undefined ? (request.sha256 ?? (await digestOf(source, what))) : undefined;
  const metadata = encrypt
    ? encodeObjectMetadata({ format: 'v1', plaintextSize: source.size, header: encrypt.header.raw, mac: macOf(current, encrypt, request) })
    : encodeObjectMetadata({ format: 'plain', plaintextSize: source.size, sha256: plainSha });
  const meter = new VerifyingMeter({ size: source.size, sha256: plainSha ?? request.sha256, sha256Of: SHA256_OF, what });
  const raw = await source.open();
  const body: Readable = encrypt ? pipeline(raw, meter, encrypt, () => undefined) : pipeline(raw, meter, () => undefined);
  const storedSize = encrypt ? ciphertextSize(source.size, encrypt.header.chunkLog2) : source.size;
  let put: { etag: string | undefined; checksumCrc32: string | undefined };
  try {
    put = await runtime.store.put(request.target, request.key, body, {
      metadata,
      kmsKeyArn: runtime.config.kmsKeyArn,
      checksumAlgorithm: 'CRC32',
      partSize: runtime.config.partSize,
      queueSize: runtime.config.transferConcurrency,
      // Write once, enforced by S3: a twin delivery of the same announcement never overwrites the object.
      ifNoneMatch: '*',
    });
  } catch (err) {
    if (isConditionFailure(err)) return { outcome: 'key-taken', sha256: request.sha256 ?? plainSha ?? finishedDigest(meter) };
    put = await acceptLostCompletion(runtime, request, err, { storedSize, encrypt });
  }
  return { outcome: 'written', storedSize, checksumCrc32: put.checksumCrc32, sha256: meter.sha256 };
}

/** The meter's digest when it read the whole source (a refused single PUT or completion: it did), else undefined. */
function finishedDigest(meter: VerifyingMeter): string | undefined {
  try {
    return meter.sha256;
  } catch {
    return undefined;
  }
}

/** What the expected digest of an upload is, for the meter's message. */
const SHA256_OF = 'announced sha256, or the digest read before the upload: the source changed while it was read, or the announcement is wrong';

function macOf(key: KeyEntry | undefined, encrypt: EncryptStream, request: WriteRequest): string | undefined {
  return key !== undefined && request.sha256 !== undefined ? digestMac(key, encrypt.header.salt, request.identity, request.sha256) : undefined;
}

/** A CompleteMultipartUpload whose answer was lost: S3 completed it, and the SDK's retry got NoSuchUpload. */
function isLostCompletion(err: unknown): err is StorageError {
  return err instanceof StorageError && err.cause instanceof Error && err.cause.name === 'NoSuchUpload';
}

/**
 * After a lost completion the object is there, whole (S3 shows a multipart object only once complete): accept
 * it when its size, plaintext size and header are ours; rethrow `err` otherwise.
 */
async function acceptLostCompletion(
  runtime: WriteRuntime,
  request: WriteRequest,
  err: unknown,
  expected: { readonly storedSize: number; readonly encrypt: EncryptStream | undefined },
): Promise<{ etag: string | undefined; checksumCrc32: string | undefined }> {
  if (!isLostCompletion(err)) throw err;
  const landed = await runtime.store.head(request.target, request.key);
  const meta = landed && decodeObjectMetadata(landed.metadata);
  const sameHeader = expected.encrypt === undefined || meta?.header?.equals(expected.encrypt.header.raw) === true;
  if (landed === undefined || meta === undefined || landed.size !== expected.storedSize || meta.plaintextSize !== request.source.size || !sameHeader) throw err;
  return { etag: landed.etag, checksumCrc32: landed.checksumCrc32 };
}

/** The SHA-256 of the source, read once to its end (size checked). */
export async function digestOf(source: SegmentSource, what: string): Promise<string> {
  const meter = new VerifyingMeter({ size: source.size, what });
  const stream = await source.open();
  await new Promise<void>((resolve, reject) => pipeline(stream, meter, (err) => (err ? reject(err) : resolve())).resume());
  return meter.sha256;
}
