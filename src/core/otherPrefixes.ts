/**
 * Changing S3_STORAGE_OBJECT_KEY_PREFIX starts a fresh virtual bucket, as in LogScale: the registry of buckets
 * and the deletion marks live under the prefix, so restores and cleanup see only objects under the new one.
 * This module says so at cold start: it finds the registries of other prefixes in the state bucket (one
 * ListObjectsV2 with the delimiter "_bucket-storage/" returns every prefix holding bucket-storage state, however
 * many marks each holds) and names them, as a warning when this cold start created the prefix's registry (the
 * prefix is new here), as information otherwise (other clusters may share the state bucket on purpose).
 */
import { ListedBucketRegistry, type BucketRegistry } from './bucketRegistry.ts';
import type { Config } from './config.ts';
import { errorFields, logger } from './logger.ts';
import { prefixOfRegistryKey, registryKey, STATE_DIRECTORY } from './objectKeys.ts';
import type { BucketRef, S3Store } from './s3Store.ts';

/** `s3://state/<prefix>_bucket-storage/registry.json` of every other prefix that has a registry. */
export async function otherRegistries(store: Pick<S3Store, 'commonPrefixes' | 'list'>, state: BucketRef, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const common of await store.commonPrefixes(state, STATE_DIRECTORY)) {
    const key = `${common}${registryKey('').slice(STATE_DIRECTORY.length)}`;
    const other = prefixOfRegistryKey(key);
    if (other === undefined || other === prefix) continue;
    for await (const page of store.list(state, key)) {
      if (page.some((o) => o.key === key)) found.push(`s3://${state.bucket}/${key}`);
      break;
    }
  }
  return found;
}

/** The other prefixes' registries (see otherRegistries); [] without a state bucket or when it cannot be listed. */
export async function findOtherRegistries(store: Pick<S3Store, 'commonPrefixes' | 'list'>, config: Pick<Config, 'stateBucket' | 'awsRegion' | 'keyPrefix'>): Promise<string[]> {
  if (config.stateBucket === undefined) return [];
  try {
    return await otherRegistries(store, { bucket: config.stateBucket, region: config.awsRegion }, config.keyPrefix);
  } catch (err) {
    logger.info('could not list the state bucket for registries of other prefixes (s3:ListBucket on it)', errorFields(err));
    return [];
  }
}

/** Logs the registries of other prefixes (see the module comment). */
export function reportOtherPrefixes(prefix: string, registry: BucketRegistry, others: readonly string[]): void {
  if (others.length === 0) return;
  const message = `S3_STORAGE_OBJECT_KEY_PREFIX ${JSON.stringify(prefix)} is a virtual bucket of its own: restores and cleanup see only objects under it. ` +
    `Other prefixes have registries in the state bucket: ${others.join(', ')}. If this cluster used one of them before, its objects are no longer found by restores nor deleted by cleanup: set the prefix back to reach them`;
  if (registry instanceof ListedBucketRegistry && registry.fresh) logger.warn(`a fresh registry was created for this prefix. ${message}`, { prefix, otherRegistries: [...others] });
  else logger.info(message, { prefix, otherRegistries: [...others] });
}
