/**
 * Where an upload reads a segment from: a `file://` path inside S3_STORAGE_SOURCE_ROOT (symlinks resolved; on
 * Lambda a shared file system such as EFS mounted there), or an `s3://bucket/key` staging object. The size is
 * known before any byte is read.
 *
 * A file is opened once and its descriptor checked (confinement.ts); every pass reads through that descriptor
 * with positional reads, so a path component swapped after the check cannot make the upload read another file.
 * A pass pulls the bytes into the caller's buffers (src/core/byteSource.ts): no stream, no buffer per read.
 *
 * `s3://` sources are read with the function's role (never the data buckets' static keys). An object in the
 * staging bucket (S3_STORAGE_STAGING_BUCKET) is read in the staging bucket's own region
 * (S3_STORAGE_STAGING_REGION), which may differ from the current bucket's; any other bucket in the current
 * bucket's region.
 */
import { fileBytes, readableBytes, type ByteSource } from '../core/byteSource.ts';
import type { Config } from '../core/config.ts';
import { openFileInsideRoot } from '../core/confinement.ts';
import { LocationError } from '../core/errors.ts';
import { parseLocation } from '../core/locations.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';

/** An object in the staging bucket. */
export interface StagedObject {
  readonly ref: BucketRef;
  readonly key: string;
}

export interface SegmentSource {
  readonly url: string;
  /** Bytes of the segment. */
  readonly size: number;
  /** Set when the source is an object in the staging bucket (it may be deleted once the segment is stored). */
  readonly staged: StagedObject | undefined;
  /** A fresh read of its bytes from the first (called once per pass); `close` ends the pass. */
  openBytes(): Promise<ByteSource & { close(): Promise<void> }>;
  /** Releases what the source holds (the file's descriptor); call once the upload is over. */
  close(): Promise<void>;
}

export interface SourceRuntime {
  readonly config: Pick<Config, 'region' | 'sourceRoot' | 'staging'>;
  /** The store of the function's own role: s3:// sources are read through it. */
  readonly roleStore: Pick<S3Store, 'head' | 'get'>;
}

export async function openSource(runtime: SourceRuntime, url: string): Promise<SegmentSource> {
  const location = parseLocation('source', url);
  if (location.kind === 'file') {
    const file = await openFileInsideRoot(location.path, runtime.config.sourceRoot, 'S3_STORAGE_SOURCE_ROOT');
    return {
      url,
      size: file.size,
      staged: undefined,
      // Every pass reads from the beginning with pread; the descriptor stays open between passes.
      openBytes: async () => ({ ...fileBytes(file.handle, 0), close: async () => undefined }),
      close: () => file.handle.close(),
    };
  }
  const staging = runtime.config.staging;
  const inStaging = staging !== undefined && location.bucket === staging.bucket;
  const ref: BucketRef = { bucket: location.bucket, region: inStaging ? staging.region : runtime.config.region };
  const info = await runtime.roleStore.head(ref, location.key);
  if (info === undefined) throw new LocationError(url, `source ${url} does not exist`);
  return {
    url,
    size: info.size,
    staged: inStaging ? { ref, key: location.key } : undefined,
    async openBytes() {
      const body = await runtime.roleStore.get(ref, location.key);
      return { ...readableBytes(body), close: async () => void body.destroy() };
    },
    close: async () => undefined,
  };
}
