/**
 * S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: the staged copy of a segment (an object in S3_STORAGE_STAGING_BUCKET) is
 * deleted once the segment's stored copy is verified, never before:
 *   - after an upload, once the object was read back (size and CRC32 as sent, readBack.ts);
 *   - when the segment was already stored, once that copy was found intact (storedCopy.ts): the record is
 *     acknowledged either way, so the staged copy serves nothing more; a redelivery after a crash between the
 *     upload and the delete would otherwise leave it behind.
 * A failed upload throws before this runs, so its staged copy stays for the retry. A failed delete does not fail
 * the record (the segment is stored): it is logged, and the staging bucket's lifecycle expiry removes the copy.
 * A staging bucket that is also a registered data bucket is never deleted from.
 */
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import { errorFields, logger } from '../core/logger.ts';
import type { S3Store } from '../core/s3Store.ts';
import type { StagedObject } from './source.ts';

export type StagedCopyOutcome = 'deleted' | 'delete-failed' | 'kept';

export interface StagedCopyRuntime {
  readonly registry: Pick<BucketRegistry, 'all'>;
  readonly roleStore: Pick<S3Store, 'deleteObject'>;
}

/** Deletes the staged copy of a segment whose stored copy the caller has verified. */
export async function deleteStagedCopy(runtime: StagedCopyRuntime, staged: StagedObject, what: string): Promise<StagedCopyOutcome> {
  const where = `s3://${staged.ref.bucket}/${staged.key}`;
  if ((await runtime.registry.all()).some((b) => b.bucket === staged.ref.bucket)) {
    logger.error('staged copy kept: the staging bucket is also a registered data bucket', { segment: what, staged: where });
    return 'kept';
  }
  try {
    await runtime.roleStore.deleteObject(staged.ref, staged.key);
    return 'deleted';
  } catch (err) {
    logger.warn('segment stored, but its staged copy could not be deleted; the staging lifecycle rule will expire it', { segment: what, staged: where, ...errorFields(err) });
    return 'delete-failed';
  }
}
