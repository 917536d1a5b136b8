/**
 * The one upload function: a segment announcement in, one intact object in the current bucket out.
 *
 *   1. validate the announcement; compute the key (objectKeys)
 *   2. already stored? HEAD the key in every registered bucket, current first: an object of ours with the same
 *      plaintext size is acknowledged without a copy (files already stored are never written again)
 *   3. open the source (file:// inside S3_STORAGE_SOURCE_ROOT, or an s3:// staging object); check its size
 *   4. stream: source → SHA-256 + size check (VerifyingMeter) → format v1 encryption (unless `off`) → multipart
 *      upload with a CRC32 additional checksum, and SSE-KMS when a key ARN is set
 *   5. USING_EPHEMERAL_DISKS: read the object's size and checksum back before acknowledging
 *
 * The announcement's sha256 is checked in the meter's flush, before the body ends, so a mismatch errors the
 * body and lib-storage aborts the multipart upload: no object appears. A crash mid-upload leaves no object
 * either (S3 shows a multipart object only on CompleteMultipartUpload), so a redelivery starts clean.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import type { Config } from '../core/config.ts';
import { IntegrityError, LocationError, StorageError } from '../core/errors.ts';
import type { KeyRing } from '../core/keyRing.ts';
import { parseLocation, resolveExistingInsideRoot } from '../core/locations.ts';
import { parseWith, segmentAnnouncementSchema, type SegmentAnnouncement } from '../core/messages.ts';
import { decodeObjectMetadata, encodeObjectMetadata, type SegmentObjectMetadata } from '../core/objectMetadata.ts';
import { formatSegmentKey, type SegmentIdentity } from '../core/objectKeys.ts';
import type { BucketRef, ObjectInfo, S3Store } from '../core/s3Store.ts';
import { ciphertextSize, createEncryptStream, parseHeader } from '../core/format/index.ts';
import { VerifyingMeter } from '../core/verifyingMeter.ts';

export interface UploadContext {
  readonly config: Config;
  readonly store: Pick<S3Store, 'head' | 'get' | 'put' | 'abortIncompleteUploads'>;
  readonly keyRing: KeyRing;
  readonly registry: BucketRegistry;
}

export interface UploadResult {
  readonly outcome: 'uploaded' | 'already-stored';
  readonly bucket: string;
  readonly key: string;
  /** Plaintext bytes of the segment. */
  readonly size: number;
  /** Bytes stored in the bucket. */
  readonly storedSize: number;
  /** Hex SHA-256 of the plaintext (computed while streaming; absent for already-stored segments). */
  readonly sha256?: string;
  /** True when the object was read back and compared (USING_EPHEMERAL_DISKS). */
  readonly verified: boolean;
}

interface OpenedSource {
  readonly size: number;
  open(): Promise<Readable>;
}

/** The stored size an object of ours must have, from its metadata. */
export function expectedStoredSize(meta: SegmentObjectMetadata): number {
  if (meta.format === 'plain' || meta.header === undefined) return meta.plaintextSize;
  return ciphertextSize(meta.plaintextSize, parseHeader(meta.header).chunkLog2);
}

async function openSource(ctx: UploadContext, announcement: SegmentAnnouncement): Promise<OpenedSource> {
  const location = parseLocation('source', announcement.source);
  if (location.kind === 'file') {
    const real = await resolveExistingInsideRoot(location.path, ctx.config.sourceRoot, 'S3_STORAGE_SOURCE_ROOT');
    const info = await stat(real);
    if (!info.isFile()) throw new LocationError(announcement.source, `source ${location.path} is not a regular file`);
    return { size: info.size, open: async () => createReadStream(real, { highWaterMark: 1 << 20 }) };
  }
  const ref: BucketRef = { bucket: location.bucket, region: ctx.config.region };
  const info = await ctx.store.head(ref, location.key);
  if (info === undefined) throw new LocationError(announcement.source, `source ${announcement.source} does not exist`);
  return { size: info.size, open: () => ctx.store.get(ref, location.key) };
}

/** The stored copy of `key` in any registered bucket (current first), if one of ours exists. */
async function findStored(ctx: UploadContext, key: string): Promise<{ ref: BucketRef; info: ObjectInfo; meta: SegmentObjectMetadata } | undefined> {
  for (const ref of await ctx.registry.searchOrder()) {
    const info = await ctx.store.head(ref, key);
    const meta = info && decodeObjectMetadata(info.metadata);
    if (info && meta) return { ref, info, meta };
  }
  return undefined;
}

/**
 * Uploads the announced segment, or acknowledges it when it is already stored.
 * @example
 *   await uploadSegment(ctx, { version: 1, dataspace: 'logs', segmentId: 'seg-1', source: 'file:///mnt/segments/seg-1' });
 */
export async function uploadSegment(ctx: UploadContext, input: unknown): Promise<UploadResult> {
  const announcement = parseWith(segmentAnnouncementSchema, input, 'segment announcement');
  const identity: SegmentIdentity = { dataspace: announcement.dataspace, segmentId: announcement.segmentId };
  const key = formatSegmentKey(ctx.config.keyPrefix, identity);
  const what = `segment ${identity.dataspace}/${identity.segmentId} (${announcement.source})`;

  const source = await openSource(ctx, announcement);
  if (announcement.size !== undefined && announcement.size !== source.size) {
    throw new IntegrityError('size', String(announcement.size), String(source.size), `${what}: the source's size differs from the announcement`);
  }

  const stored = await findStored(ctx, key);
  if (stored !== undefined) {
    if (stored.meta.plaintextSize !== source.size) {
      throw new IntegrityError('size', String(stored.meta.plaintextSize), String(source.size), `${what}: s3://${stored.ref.bucket}/${key} already holds this segment with another size; it is never overwritten`);
    }
    if (stored.info.size === expectedStoredSize(stored.meta)) {
      return { outcome: 'already-stored', bucket: stored.ref.bucket, key, size: source.size, storedSize: stored.info.size, verified: false };
    }
    // A stored object whose size disagrees with its own metadata is damaged: fall through and write a good one.
  }

  const target = ctx.registry.current;
  // A redelivery after a crash: parts of the dead attempt are aborted first, so none are left behind.
  await ctx.store.abortIncompleteUploads(target, key);
  const meter = new VerifyingMeter({ size: source.size, sha256: announcement.sha256, what });
  const current = ctx.keyRing.current;
  const encrypt = current === undefined ? undefined : createEncryptStream({ key: current, identity, chunkLog2: ctx.config.chunkLog2 });
  const metadata =
    encrypt === undefined
      ? undefined
      : encodeObjectMetadata({ format: 'v1', plaintextSize: source.size, header: encrypt.header.raw });
  const raw = await source.open();
  const body: Readable = encrypt ? pipeline(raw, meter, encrypt, () => undefined) : pipeline(raw, meter, () => undefined);
  // With encryption off the plaintext digest is stored, so it is known only at the end: plain objects carry the
  // announced sha256 when given; otherwise the digest is computed first by a separate pass over the source.
  const plainSha = encrypt === undefined ? (announcement.sha256 ?? (await digestOf(await source.open(), source.size, what))) : undefined;
  const storedSize = encrypt ? ciphertextSize(source.size, encrypt.header.chunkLog2) : source.size;
  let put: { etag: string | undefined; checksumCrc32: string | undefined };
  try {
    put = await ctx.store.put(target, key, body, {
      metadata: metadata ?? encodeObjectMetadata({ format: 'plain', plaintextSize: source.size, sha256: plainSha }),
      kmsKeyArn: ctx.config.kmsKeyArn,
      checksumAlgorithm: 'CRC32',
      partSize: ctx.config.partSize,
      queueSize: ctx.config.transferConcurrency,
    });
  } catch (err) {
    // A CompleteMultipartUpload whose answer was lost: S3 completed it, the SDK's retry then gets NoSuchUpload.
    // The object is there, whole (S3 shows a multipart object only once complete), with our header: accept it.
    if (!(err instanceof StorageError) || !/NoSuchUpload/.test(err.message)) throw err;
    const landed = await ctx.store.head(target, key);
    const meta = landed && decodeObjectMetadata(landed.metadata);
    const sameHeader = encrypt === undefined || meta?.header?.equals(encrypt.header.raw) === true;
    if (landed === undefined || meta === undefined || landed.size !== storedSize || meta.plaintextSize !== source.size || !sameHeader) throw err;
    put = { etag: landed.etag, checksumCrc32: landed.checksumCrc32 };
  }
  if (plainSha !== undefined && meter.sha256 !== plainSha) {
    // Only reachable when the source changed between the digest pass and the upload.
    throw new IntegrityError('sha256', plainSha, meter.sha256, `${what}: the source changed while it was uploaded`);
  }
  let verified = false;
  if (ctx.config.ephemeralDisks) {
    const back = await ctx.store.head(target, key);
    if (back === undefined) throw new IntegrityError('size', String(storedSize), 'no object', `${what}: read back of s3://${target.bucket}/${key}`);
    if (back.size !== storedSize) throw new IntegrityError('size', String(storedSize), String(back.size), `${what}: read back of s3://${target.bucket}/${key}`);
    if (put.checksumCrc32 !== undefined && back.checksumCrc32 !== undefined && put.checksumCrc32 !== back.checksumCrc32) {
      throw new IntegrityError('checksum', put.checksumCrc32, back.checksumCrc32, `${what}: read back of s3://${target.bucket}/${key} (CRC32)`);
    }
    verified = true;
  }
  return { outcome: 'uploaded', bucket: target.bucket, key, size: source.size, storedSize, sha256: meter.sha256, verified };
}

async function digestOf(stream: Readable, size: number, what: string): Promise<string> {
  const meter = new VerifyingMeter({ size, what });
  await new Promise<void>((resolve, reject) => pipeline(stream, meter, (err) => (err ? reject(err) : resolve())).resume());
  return meter.sha256;
}
