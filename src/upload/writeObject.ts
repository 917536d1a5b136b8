/**
 * Moves a segment into its object: source → size and SHA-256 check (CheckedBytes) → format v1 encryption
 * (SealedBytes, unless `off`) → multipart upload with a CRC32 additional checksum, SSE-KMS when a key ARN is
 * set. The bytes are pulled from the source straight into the upload's part buffers (src/core/byteSource.ts):
 * read once, sealed once, no stream and no copy in between.
 *
 * The expected sha256 (the announcement's, or with encryption `off` the digest that goes into bks-sha256) is
 * checked as the last byte is read, before the last part is sent, so a mismatch (a wrong announcement, or a
 * source that changed while it was read) fails the upload and its multipart upload is aborted: no object
 * appears. A crash mid-upload leaves no object either (S3 shows a multipart object only on
 * CompleteMultipartUpload), so a redelivery starts clean. With an announced sha256, a format v1 object carries
 * bks-mac (digestMac.ts) and bks-digest (sealedDigest.ts): both are written only because the upload completes
 * only when the bytes it sealed have that digest. The plaintext's SHA-256 is computed only where something
 * needs it: an announced sha256 to check, or encryption `off` (bks-sha256); with encryption on the chunk tags
 * are the integrity check.
 *
 * Write once, enforced by S3: the object is created with If-None-Match: * (PutObject, and CompleteMultipartUpload:
 * multipartUpload.ts sends it with both), so it never overwrites an object: when a twin delivery of the same
 * announcement created the key first, S3 answers 412 and the write ends as 'key-taken' (the caller then checks
 * the object there as it checks any already-stored copy).
 */
import { CheckedBytes } from '../core/byteSource.ts';
import type { Config } from '../core/config.ts';
import { digestMac } from '../core/digestMac.ts';
import { sealDigest } from '../core/sealedDigest.ts';
import { StorageError } from '../core/errors.ts';
import type { KeyEntry, KeyRing } from '../core/keyRing.ts';
import { decodeObjectMetadata, encodeObjectMetadata } from '../core/objectMetadata.ts';
import type { SegmentIdentity } from '../core/objectKeys.ts';
import { isConditionFailure, type BucketRef, type S3Store } from '../core/s3Store.ts';
import { SealedBytes } from '../core/format/index.ts';
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
 * What a write did: 'written' (with the plaintext's SHA-256 when something needed it: see above), or 'key-taken'
 * when S3 refused it because the key exists (with the SHA-256 of the content it tried to write, when known).
 */
export type WrittenObject =
  | (Written & { readonly outcome: 'written'; readonly sha256: string | undefined })
  | { readonly outcome: 'key-taken'; readonly sha256: string | undefined };

/** Writes the segment's object in `request.target`; rejects leaving no object. */
export async function writeSegmentObject(runtime: WriteRuntime, request: WriteRequest): Promise<WrittenObject> {
  const { source, what } = request;
  const current = runtime.keyRing.current;
  // With encryption off the plaintext digest goes into the metadata, which S3 takes before the first byte: the
  // announced sha256 when given, otherwise a first pass over the source computes it.
  const plainSha = current === undefined ? (request.sha256 ?? (await digestOf(source, what))) : undefined;
  const bytes = await source.openBytes();
  try {
    const plaintext = new CheckedBytes(bytes, { size: source.size, sha256: plainSha ?? request.sha256, sha256Of: SHA256_OF, digest: current === undefined, what });
    const sealed = current === undefined ? undefined : new SealedBytes({ key: current, identity: request.identity, chunkLog2: runtime.config.chunkLog2, plaintext, plaintextSize: source.size });
    const metadata = sealed
      ? encodeObjectMetadata({ format: 'v1', plaintextSize: source.size, header: sealed.header.raw, ...announcedDigest(current, sealed, request) })
      : encodeObjectMetadata({ format: 'plain', plaintextSize: source.size, sha256: plainSha });
    const storedSize = sealed ? sealed.storedSize : source.size;
    let put: { etag: string | undefined; checksumCrc32: string | undefined };
    try {
      put = await runtime.store.put(request.target, request.key, sealed ?? plaintext, {
        metadata,
        kmsKeyArn: runtime.config.kmsKeyArn,
        checksumAlgorithm: 'CRC32',
        partSize: runtime.config.partSize,
        queueSize: runtime.config.transferConcurrency,
        // Write once, enforced by S3: a twin delivery of the same announcement never overwrites the object.
        ifNoneMatch: '*',
      });
    } catch (err) {
      if (isConditionFailure(err)) return { outcome: 'key-taken', sha256: request.sha256 ?? plainSha ?? finishedDigest(plaintext) };
      put = await acceptLostCompletion(runtime, request, err, { storedSize, sealed });
    }
    return { outcome: 'written', storedSize, checksumCrc32: put.checksumCrc32, sha256: plaintext.sha256 };
  } finally {
    await bytes.close();
  }
}

/** The digest of the bytes read when they were read whole (a refused single PUT or completion: they were), else undefined. */
function finishedDigest(plaintext: CheckedBytes): string | undefined {
  try {
    return plaintext.sha256;
  } catch {
    return undefined;
  }
}

/** What the expected digest of an upload is, for the meter's message. */
const SHA256_OF = 'announced sha256, or the digest read before the upload: the source changed while it was read, or the announcement is wrong';

/** bks-mac and bks-digest of a format v1 object, when the announcement gave a sha256 (the upload fails unless the bytes have it). */
function announcedDigest(key: KeyEntry | undefined, sealed: SealedBytes, request: WriteRequest): { mac?: string; digest?: string } {
  if (key === undefined || request.sha256 === undefined) return {};
  return { mac: digestMac(key, sealed.header.salt, request.identity, request.sha256), digest: sealDigest(key.master, sealed.header, request.identity, request.sha256) };
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
  expected: { readonly storedSize: number; readonly sealed: SealedBytes | undefined },
): Promise<{ etag: string | undefined; checksumCrc32: string | undefined }> {
  if (!isLostCompletion(err)) throw err;
  const landed = await runtime.store.head(request.target, request.key);
  const meta = landed && decodeObjectMetadata(landed.metadata);
  const sameHeader = expected.sealed === undefined || meta?.header?.equals(expected.sealed.header.raw) === true;
  if (landed === undefined || meta === undefined || landed.size !== expected.storedSize || meta.plaintextSize !== request.source.size || !sameHeader) throw err;
  return { etag: landed.etag, checksumCrc32: landed.checksumCrc32 };
}

/** The SHA-256 of the source, read once to its end (size checked), through one reused 1 MiB buffer. */
export async function digestOf(source: SegmentSource, what: string): Promise<string> {
  const bytes = await source.openBytes();
  try {
    const plaintext = new CheckedBytes(bytes, { size: source.size, digest: true, what });
    const buffer = Buffer.allocUnsafe(DIGEST_READ_SIZE);
    while ((await plaintext.read(buffer)) === buffer.length);
    return plaintext.sha256 ?? '';
  } finally {
    await bytes.close();
  }
}

const DIGEST_READ_SIZE = 1 << 20;
