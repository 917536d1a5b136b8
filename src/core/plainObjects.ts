/**
 * `plain` (unencrypted) objects while encryption is on. With encryption `off` they are what uploads write, and
 * they are read (their bks-sha256 checked). With encryption on, anyone able to write the bucket could put a
 * `plain` object in place of a segment, with a digest of their own content; so a `plain` object is read only
 * when it was written while encryption was still off: S3 last modified it before S3_STORAGE_PLAIN_OBJECTS_BEFORE
 * (the instant encryption was turned on). S3 sets LastModified on every write, so a substitute written later
 * cannot pass for an old object. Without that variable, `plain` objects are refused while encryption is on.
 * Each one read while encryption is on is counted in the log (field plainObjectReads), for a metric filter.
 */
import type { Config } from './config.ts';
import { PlainObjectRefusedError } from './errors.ts';
import { logger } from './logger.ts';
import type { SegmentObjectMetadata } from './objectMetadata.ts';
import type { BucketRef, ObjectInfo } from './s3Store.ts';

export interface StoredObject {
  readonly ref: BucketRef;
  readonly key: string;
  readonly info: Pick<ObjectInfo, 'lastModified'>;
  readonly metadata: Pick<SegmentObjectMetadata, 'format'>;
}

/**
 * Throws PlainObjectRefusedError for a `plain` object that may not be read under `config`; logs (and counts)
 * the ones read while encryption is on. Objects of format v1 always pass (their chunk tags are the check).
 */
export function checkPlainObject(config: Pick<Config, 'encryption' | 'plainObjectsBefore'>, object: StoredObject, purpose: string): void {
  if (object.metadata.format !== 'plain' || config.encryption.mode === 'off') return;
  const where = `s3://${object.ref.bucket}/${object.key}`;
  const before = config.plainObjectsBefore;
  const modified = object.info.lastModified;
  if (before === undefined) {
    throw new PlainObjectRefusedError(
      object.ref.bucket,
      object.key,
      `${where} is a plain (unencrypted) object but encryption is on: refused, it could be a substitute. If plain objects were written before encryption was turned on, set S3_STORAGE_PLAIN_OBJECTS_BEFORE to that instant (ISO 8601)`,
    );
  }
  if (modified === undefined || modified.getTime() >= before.getTime()) {
    throw new PlainObjectRefusedError(
      object.ref.bucket,
      object.key,
      `${where} is a plain (unencrypted) object last modified ${modified?.toISOString() ?? 'at an unknown time'}, not before S3_STORAGE_PLAIN_OBJECTS_BEFORE (${before.toISOString()}): it was not written while encryption was off, so it is refused`,
    );
  }
  logger.warn('plain object read while encryption is on', { plainObjectReads: 1, purpose, bucket: object.ref.bucket, key: object.key, lastModified: modified.toISOString() });
}
