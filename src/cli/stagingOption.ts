/**
 * The --staging option of `ship` and `smoke`: `s3://bucket[/prefix]` stages segments in S3 (signed like every
 * staging request, by the role: `store` is the role's; in S3_STORAGE_STAGING_REGION when it is the configured
 * staging bucket); without it they are announced in place, as file:// under S3_STORAGE_SOURCE_ROOT (where the
 * upload function sees them).
 */
import { isBucketName } from '../core/bucketNames.ts';
import type { Config } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import { normalisePrefix } from '../core/objectKeys.ts';
import type { S3Store } from '../core/s3Store.ts';
import { InPlaceStager, S3Stager, type Stager } from '../ship/stage.ts';
import { UsageError } from './command.ts';

export function stagerFor(staging: unknown, config: Config, store: Pick<S3Store, 'put'>): Stager {
  if (typeof staging === 'string') {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(staging);
    const bucket = m?.[1] ?? '';
    if (!isBucketName(bucket)) throw new UsageError(`--staging ${JSON.stringify(staging)}: expected s3://bucket or s3://bucket/prefix`);
    let prefix: string;
    try {
      prefix = normalisePrefix(m?.[2] ?? '');
    } catch (err) {
      throw new UsageError(`--staging ${JSON.stringify(staging)}: the prefix ${err instanceof Error ? err.message : String(err)}`);
    }
    const region = config.staging?.bucket === bucket ? config.staging.region : config.region;
    return new S3Stager(store, config, { bucket, region }, prefix);
  }
  if (config.sourceRoot === undefined) {
    const hint = config.staging === undefined ? 's3://bucket/prefix' : `s3://${config.staging.bucket}/<prefix>`;
    throw new ConfigError('S3_STORAGE_SOURCE_ROOT', `without --staging, segments stay where they are and are announced as file:// sources: set S3_STORAGE_SOURCE_ROOT to the directory where the upload function sees them (its EFS mount), or pass --staging ${hint}`);
  }
  return new InPlaceStager(config.sourceRoot);
}
