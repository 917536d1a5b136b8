/**
 * Finds a segment's object: HEAD of its key in each bucket of the registry's search order (current bucket
 * first). The first bucket that holds it wins. A bucket that refuses the HEAD (403, network) does not count as
 * "not there": if no later bucket holds the segment, that StorageError is what the caller gets, because the
 * segment may well be in the bucket that could not be read.
 */
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import { MalformedHeaderError, SegmentNotFoundError, StorageError } from '../core/errors.ts';
import { decodeObjectMetadata, type SegmentObjectMetadata } from '../core/objectMetadata.ts';
import type { BucketRef, ObjectInfo, S3Store } from '../core/s3Store.ts';

export interface LocatedSegment {
  readonly ref: BucketRef;
  readonly key: string;
  readonly info: ObjectInfo;
  readonly metadata: SegmentObjectMetadata;
}

/** The store operations a lookup needs (an S3Store, or a wrapper of one in tests). */
export type HeadStore = Pick<S3Store, 'head'>;

export async function locateSegment(store: HeadStore, registry: BucketRegistry, key: string): Promise<LocatedSegment> {
  const buckets = await registry.searchOrder();
  let refused: StorageError | undefined;
  for (const ref of buckets) {
    let info: ObjectInfo | undefined;
    try {
      info = await store.head(ref, key);
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      refused ??= err;
      continue;
    }
    if (info === undefined) continue;
    const metadata = decodeObjectMetadata(info.metadata, `s3://${ref.bucket}/${key}`);
    if (metadata === undefined) {
      throw new MalformedHeaderError(
        `s3://${ref.bucket}/${key} carries no bucket-storage metadata (bks-format, bks-size): it was not written by the upload function; restore it by hand`,
      );
    }
    return { ref, key, info, metadata };
  }
  if (refused !== undefined) throw refused;
  throw new SegmentNotFoundError(key, buckets.map((b) => `s3://${b.bucket} (${b.region})`));
}
