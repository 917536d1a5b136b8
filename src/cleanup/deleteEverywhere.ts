/**
 * Deletes a set of segment keys from every registered bucket with DeleteObjects (up to 1,000 keys a request,
 * buckets in parallel) and says which keys are not gone from all of them. A bucket that fails as a whole
 * (missing, denied, unreachable) counts every key as failed, so their deletion mark stays for the next run.
 */
import { errorFields, logger } from '../core/logger.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';

export const KEYS_PER_REQUEST = 1000;

export interface DeletionOutcome {
  /** Keys still present (or of unknown state) in at least one bucket. */
  readonly failedKeys: ReadonlySet<string>;
  /** One line per failed key or bucket. */
  readonly failures: readonly string[];
  readonly requests: number;
  /** Per bucket: keys deleted. */
  readonly deletedPerBucket: Readonly<Record<string, number>>;
}

export async function deleteEverywhere(store: Pick<S3Store, 'deleteBatch'>, buckets: readonly BucketRef[], keys: readonly string[]): Promise<DeletionOutcome> {
  const failedKeys = new Set<string>();
  const failures: string[] = [];
  const deletedPerBucket: Record<string, number> = {};
  let requests = 0;
  await Promise.all(
    buckets.map(async (ref) => {
      try {
        for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) {
          const slice = keys.slice(i, i + KEYS_PER_REQUEST);
          requests++;
          const failed = await store.deleteBatch(ref, slice);
          for (const [key, reason] of failed) {
            failedKeys.add(key);
            failures.push(`s3://${ref.bucket}/${key}: ${reason}`);
          }
          deletedPerBucket[ref.bucket] = (deletedPerBucket[ref.bucket] ?? 0) + slice.length - failed.size;
        }
      } catch (err) {
        for (const key of keys) failedKeys.add(key);
        failures.push(`s3://${ref.bucket}: ${err instanceof Error ? err.message : String(err)}`);
        logger.error('cleanup could not delete from a registered bucket; the deletion mark is kept for the next run', { bucket: ref.bucket, ...errorFields(err) });
      }
    }),
  );
  return { failedKeys, failures, requests, deletedPerBucket };
}
