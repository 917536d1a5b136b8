/**
 * The buckets a segment may be in. Uploads write to `current`; lookups (upload's "already stored?", fetch)
 * search `searchOrder()` (current first, then older buckets newest first); cleanup deletes from `all()`.
 * Until the S3-backed registry of the bucket-switch issue exists, the current bucket is the only one.
 */
import type { BucketRef } from './s3Store.ts';

export interface BucketRegistry {
  readonly current: BucketRef;
  /** Current bucket first, then the others newest first. */
  searchOrder(): Promise<readonly BucketRef[]>;
}

export class SingleBucketRegistry implements BucketRegistry {
  constructor(readonly current: BucketRef) {}
  async searchOrder(): Promise<readonly BucketRef[]> {
    return [this.current];
  }
}
