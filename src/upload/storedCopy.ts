/**
 * "Already stored?": the copy of a segment in any registered bucket (current first). An intact copy of the
 * same size means the announcement is acknowledged without a second upload (files already stored are never
 * written again); a copy of another size, or one whose stored size disagrees with its own metadata, is refused
 * and never overwritten.
 */
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import { IntegrityError } from '../core/errors.ts';
import { decodeObjectMetadata, expectedStoredSize, type SegmentObjectMetadata } from '../core/objectMetadata.ts';
import type { BucketRef, ObjectInfo, S3Store } from '../core/s3Store.ts';

export interface StoredCopy {
  readonly ref: BucketRef;
  readonly key: string;
  readonly info: ObjectInfo;
  readonly meta: SegmentObjectMetadata;
}

export interface LookupRuntime {
  readonly registry: BucketRegistry;
  readonly store: Pick<S3Store, 'head'>;
}

/** The stored copy of `key` in any registered bucket (current first), if one of ours exists. */
export async function findStoredCopy(runtime: LookupRuntime, key: string): Promise<StoredCopy | undefined> {
  for (const ref of await runtime.registry.searchOrder()) {
    const info = await runtime.store.head(ref, key);
    const meta = info && decodeObjectMetadata(info.metadata);
    if (info && meta) return { ref, key, info, meta };
  }
  return undefined;
}

/** Throws IntegrityError unless `stored` is an intact copy of a segment of `size` bytes. */
export function checkStoredCopy(stored: StoredCopy, size: number, what: string): void {
  const where = `s3://${stored.ref.bucket}/${stored.key}`;
  if (stored.meta.plaintextSize !== size) {
    throw new IntegrityError('size', String(stored.meta.plaintextSize), String(size), `${what}: ${where} already holds this segment with another size; it is never overwritten`);
  }
  const expected = expectedStoredSize(stored.meta, where);
  if (stored.info.size !== expected) {
    throw new IntegrityError('size', String(expected), String(stored.info.size), `${what}: ${where} is damaged (its size disagrees with its metadata); it is never overwritten: check it with verify, then remove it by hand`);
  }
}
