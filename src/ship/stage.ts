/**
 * Staging: where the upload function will read a segment from, with its size and SHA-256 computed in the same
 * single read of the file.
 *  - S3Stager (--staging s3://bucket/prefix): streams the file to s3://bucket/<prefix><key> (the key naming of
 *    docs/FORMAT.md under the staging prefix) through the S3 access layer, multipart with a CRC32 checksum per
 *    part that S3 verifies; the announced source is that s3:// URL.
 *  - InPlaceStager (a shared file system): reads the file once to hash it; the announced source is
 *    file://<S3_STORAGE_SOURCE_ROOT>/<path relative to DIR>, the same file as the upload function mounts it.
 * Either way the file must not change while it is read: a size or mtime that moved is a LocationError, and the
 * segment is staged again once it has settled.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { pipeline } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { Config } from '../core/config.ts';
import { LocationError } from '../core/errors.ts';
import { formatSegmentKey } from '../core/objectKeys.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';
import { Sha256Meter } from '../core/sha256Meter.ts';
import type { SegmentFile } from './layout.ts';

export interface Staged {
  /** The announcement's source URL. */
  readonly source: string;
  readonly size: number;
  readonly sha256: string;
}

export interface Stager {
  /** Where segments go, for messages ("s3://staging/prefix/", "in place under /mnt/segments"). */
  readonly describe: string;
  stage(file: SegmentFile, options?: { signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<Staged>;
}

/** Throws unless the file still has the size and mtime it was listed with, and that many bytes were read. */
async function checkUnchanged(file: SegmentFile, bytesRead: number): Promise<void> {
  const now = await stat(file.path).catch(() => undefined);
  if (now === undefined) throw new LocationError(file.path, `${file.path} vanished while it was staged`);
  if (now.size !== file.size || now.mtimeMs !== file.mtimeMs || bytesRead !== file.size) {
    throw new LocationError(file.path, `${file.path} changed while it was staged (${file.size} → ${now.size} bytes); it is staged again once it has settled`);
  }
}

function meteredRead(file: SegmentFile, onProgress?: (bytes: number) => void): { meter: Sha256Meter; done: Promise<void> } {
  const meter = new Sha256Meter();
  const raw = createReadStream(file.path, { highWaterMark: 1 << 20 });
  if (onProgress) raw.on('data', () => onProgress(raw.bytesRead));
  const done = new Promise<void>((resolve, reject) => pipeline(raw, meter, (err) => (err ? reject(err) : resolve())));
  // Awaited by the caller; a failure of the consumer first must not make it an unhandled rejection.
  done.catch(() => undefined);
  // The meter's output is the upload body (S3) or drained (in place).
  return { meter, done };
}

export class S3Stager implements Stager {
  readonly describe: string;
  constructor(
    private readonly store: Pick<S3Store, 'put'>,
    private readonly config: Pick<Config, 'partSize' | 'transferConcurrency'>,
    private readonly target: BucketRef,
    /** Normalised: '' or ending in '/'. */
    private readonly prefix: string,
  ) {
    this.describe = `s3://${target.bucket}/${prefix}`;
  }

  async stage(file: SegmentFile, options: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {}): Promise<Staged> {
    const key = formatSegmentKey(this.prefix, file.identity);
    const { meter, done } = meteredRead(file, options.onProgress);
    try {
      await this.store.put(this.target, key, meter, {
        checksumAlgorithm: 'CRC32',
        partSize: this.config.partSize,
        queueSize: this.config.transferConcurrency,
        ...(options.signal ? { abortSignal: options.signal } : {}),
      });
    } catch (err) {
      meter.destroy();
      throw err;
    }
    await done;
    await checkUnchanged(file, meter.bytes);
    return { source: `s3://${this.target.bucket}/${key}`, size: meter.bytes, sha256: meter.sha256 };
  }
}

export class InPlaceStager implements Stager {
  readonly describe: string;
  /** `sourceRoot`: where the upload function sees the segment directory (S3_STORAGE_SOURCE_ROOT). */
  constructor(private readonly sourceRoot: string) {
    this.describe = `in place, announced under ${sourceRoot}`;
  }

  async stage(file: SegmentFile, options: { onProgress?: (bytes: number) => void } = {}): Promise<Staged> {
    const { meter, done } = meteredRead(file, options.onProgress);
    meter.resume();
    await done;
    await checkUnchanged(file, meter.bytes);
    return { source: pathToFileURL(posix.join(this.sourceRoot, file.relative)).href, size: meter.bytes, sha256: meter.sha256 };
  }
}
