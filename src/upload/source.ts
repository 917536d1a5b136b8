/**
 * Where an upload reads a segment from: a `file://` path inside S3_STORAGE_SOURCE_ROOT (symlinks resolved),
 * or an `s3://bucket/key` staging object. The size is known before any byte is read.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Config } from '../core/config.ts';
import { LocationError } from '../core/errors.ts';
import { parseLocation, resolveExistingInsideRoot } from '../core/locations.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';

export interface SegmentSource {
  readonly url: string;
  /** Bytes of the segment. */
  readonly size: number;
  /** A fresh stream of its bytes (called once per pass). */
  open(): Promise<Readable>;
}

export interface SourceRuntime {
  readonly config: Pick<Config, 'region' | 'sourceRoot'>;
  readonly store: Pick<S3Store, 'head' | 'get'>;
}

export async function openSource(runtime: SourceRuntime, url: string): Promise<SegmentSource> {
  const location = parseLocation('source', url);
  if (location.kind === 'file') {
    const real = await resolveExistingInsideRoot(location.path, runtime.config.sourceRoot, 'S3_STORAGE_SOURCE_ROOT');
    const info = await stat(real);
    if (!info.isFile()) throw new LocationError(url, `source ${location.path} is not a regular file`);
    return { url, size: info.size, open: async () => createReadStream(real, { highWaterMark: 1 << 20 }) };
  }
  const ref: BucketRef = { bucket: location.bucket, region: runtime.config.region };
  const info = await runtime.store.head(ref, location.key);
  if (info === undefined) throw new LocationError(url, `source ${url} does not exist`);
  return { url, size: info.size, open: () => runtime.store.get(ref, location.key) };
}
