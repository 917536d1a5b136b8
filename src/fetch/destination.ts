/**
 * Where a restore writes. Both kinds see the end of their input only after every byte verified (see
 * src/core/verifyingMeter.ts), and both leave nothing behind on failure:
 *   file://  a file (never a directory) confined to S3_STORAGE_RESTORE_ROOT through its directory's checked
 *            descriptor; written to a temporary file in that directory, fsynced, then renamed over the
 *            destination; on failure the temporary file is removed, and temporary files that killed restores
 *            left there are removed by the next restore into the directory (restoreTemporaries.ts).
 *   s3://    never a place of the pipeline's own (data buckets' prefix, state bucket); one streaming upload
 *            (multipart above the part size); on failure the multipart upload is aborted and no object is created;
 *            a multipart upload of the key that a killed restore left (older than the functions' timeout) is
 *            aborted first.
 */
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../core/config.ts';
import { ConfinedDirectory, errnoCode } from '../core/confinement.ts';
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import { describeValue, LocationError, ProtectedDestinationError } from '../core/errors.ts';
import type { Location } from '../core/locations.ts';
import type { S3Store } from '../core/s3Store.ts';
import { FileWriter } from './fileWriter.ts';
import { writePlacementFor, type WritevAt } from './writePlacement.ts';
import { removeAbandonedTemporaries, temporaryName } from './restoreTemporaries.ts';

export interface Destination {
  /** What the answer and messages call it. */
  readonly url: string;
  /** Consumes `body` to its end; resolves once the bytes are durably in place, rejects leaving nothing. */
  write(body: Readable, signal?: AbortSignal): Promise<void>;
}

/** The store operations an s3:// destination needs. */
export type PutStore = Pick<S3Store, 'put' | 'abortIncompleteUploads'>;

/**
 * Checks a destination before anything is read from S3: an s3:// destination must not be one of the pipeline's
 * own places (refuseProtectedDestination); a file:// path must be a file (not a directory) inside the restore
 * root, and its directory must accept a new file (a temporary file is created now, so an unwritable
 * destination fails before any GET).
 */
export async function openDestination(location: Location, config: Config, store: PutStore, registry: Pick<BucketRegistry, 'all'>): Promise<PreparedDestination> {
  if (location.kind === 'file') return fileDestination(location, config);
  await refuseProtectedDestination(location, config, registry);
  return s3Destination(location, config, store);
}

/**
 * Throws ProtectedDestinationError for an s3:// destination that would overwrite the pipeline's own objects:
 * anything under the object key prefix of a registered data bucket (the whole bucket when the prefix is
 * empty), anything in the state bucket (the registry), or anything in the staging bucket (segments waiting
 * to be copied: a restore there would replace a staged segment before its upload).
 */
export async function refuseProtectedDestination(
  location: Extract<Location, { kind: 's3' }>,
  config: Pick<Config, 'keyPrefix' | 'stateBucket' | 'staging'>,
  registry: Pick<BucketRegistry, 'all'>,
): Promise<void> {
  const url = `s3://${location.bucket}/${location.key}`;
  if (location.bucket === config.stateBucket) {
    throw new ProtectedDestinationError(location.bucket, location.key, `destination ${describeValue(url)} is in the state bucket (S3_STORAGE_STATE_BUCKET), which holds the registry of buckets; restore elsewhere`);
  }
  if (location.bucket === config.staging?.bucket) {
    throw new ProtectedDestinationError(location.bucket, location.key, `destination ${describeValue(url)} is in the staging bucket (S3_STORAGE_STAGING_BUCKET), where segments wait to be copied; restore elsewhere`);
  }
  const data = (await registry.all()).find((ref) => ref.bucket === location.bucket);
  if (data !== undefined && location.key.startsWith(config.keyPrefix)) {
    const where = config.keyPrefix === '' ? 'a data bucket of this pipeline (S3_STORAGE_OBJECT_KEY_PREFIX is empty: the whole bucket is ours)' : `under the object key prefix ${JSON.stringify(config.keyPrefix)} of a data bucket of this pipeline`;
    throw new ProtectedDestinationError(location.bucket, location.key, `destination ${describeValue(url)} is ${where}; a restore there could overwrite stored segments: restore to another bucket or key`);
  }
}

/** One streaming upload (multipart above the part size, src/core/multipartUpload.ts), aborted on failure. */
function s3Destination(location: Extract<Location, { kind: 's3' }>, config: Config, store: PutStore): PreparedDestination {
  const ref = { bucket: location.bucket, region: config.region };
  return {
    url: `s3://${location.bucket}/${location.key}`,
    async write(body, signal) {
      // A failure of the body (authentication, integrity) is the restore's error, not the upload's.
      let bodyError: unknown;
      body.once('error', (err) => (bodyError = err));
      try {
        // A multipart upload of this key left by a killed restore (older than the functions' timeout) goes first.
        await store.abortIncompleteUploads(ref, location.key, new Date(Date.now() - config.uploadTimeoutSeconds * 1000));
        await store.put(ref, location.key, body, {
          partSize: config.partSize,
          queueSize: config.transferConcurrency,
          kmsKeyArn: config.kmsKeyArn,
          ...(signal ? { abortSignal: signal } : {}),
        });
      } catch (err) {
        throw bodyError ?? err;
      }
    },
    async discard() {},
  };
}

/**
 * A temporary file beside the destination, fsynced and renamed into place; removed on failure. Every step
 * names files through the destination directory's checked descriptor (confinement.ts), so a directory swapped
 * for a symlink meanwhile cannot make the restore write outside the root.
 */
async function fileDestination(location: Extract<Location, { kind: 'file' }>, config: Config): Promise<PreparedDestination> {
  const { dir, name } = await ConfinedDirectory.forNewFile(location.path, config.restoreRoot, 'S3_STORAGE_RESTORE_ROOT');
  const target = join(dir.path, name);
  const tempName = temporaryName(name);
  let file: FileHandle;
  let writev: WritevAt;
  try {
    await removeAbandonedTemporaries((entry) => dir.entry(entry), config.uploadTimeoutSeconds * 1000);
    writev = await writePlacementFor(dir.entry('.'));
    file = await createTemporary(dir, tempName, location.path);
  } catch (err) {
    await dir.close();
    throw err;
  }
  const removeTemp = () => unlink(dir.entry(tempName)).catch(() => undefined);
  let settled = false;
  /**
   * Runs `fill` (which writes the whole file), then fsyncs, closes and renames it into place; on failure removes
   * it. A stop (the deadline) that comes during the final fsync still fails the restore, leaving nothing: the
   * caller is told it failed, so the file must not appear.
   */
  const complete = async (fill: () => Promise<void>, signal: AbortSignal | undefined) => {
    settled = true;
    try {
      await fill();
      await file.sync();
      signal?.throwIfAborted();
      await file.close();
      await moveIntoPlace(dir, tempName, name, location.path);
    } catch (err) {
      await file.close().catch(() => undefined);
      await removeTemp();
      throw err;
    } finally {
      await dir.close();
    }
  };
  return {
    url: `file://${target}`,
    async write(body, signal) {
      // The writer's own fsync at the end is left to complete(), which syncs once for every kind of write.
      const behind = new WriteBehind(file);
      await complete(async () => {
        await pipeline(body, behind.stage(), new FileWriter(file, writev, { sync: false }), signal ? { signal } : {});
        await behind.settled();
      }, signal);
    },
    async writeParts(fill, signal) {
      const behind = new WriteBehind(file);
      await complete(async () => {
        await fill({
          async writePart(body, position, signal) {
            const writer = new FileWriter(file, writev, { start: position, sync: false });
            await pipeline(body, behind.stage(), writer, { signal });
            return writer.bytesWritten;
          },
        });
        await behind.settled();
      }, signal);
    },
    async discard() {
      if (settled) return;
      settled = true;
      await file.close().catch(() => undefined);
      await removeTemp();
      await dir.close();
    },
  };
}

/** Creates the temporary file in `dir` (never following a symlink, never reusing a name) and checks where it is. */
async function createTemporary(dir: ConfinedDirectory, tempName: string, path: string): Promise<FileHandle> {
  let file: FileHandle;
  try {
    file = await open(dir.entry(tempName), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new LocationError(path, `cannot create a file in ${dir.path} (${errnoCode(err)}): check that the directory is writable`, { cause: err });
  }
  try {
    await dir.checkFile(file, tempName);
    return file;
  } catch (err) {
    await file.close().catch(() => undefined);
    await unlink(dir.entry(tempName)).catch(() => undefined);
    throw err;
  }
}

/** Renames the finished temporary file over the destination, within the checked directory, durably. */
async function moveIntoPlace(dir: ConfinedDirectory, tempName: string, name: string, path: string): Promise<void> {
  await dir.check();
  try {
    await rename(dir.entry(tempName), dir.entry(name));
  } catch (err) {
    const code = errnoCode(err);
    const why = code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' ? 'a directory appeared at the destination' : code;
    throw new LocationError(path, `cannot move the restored file into place at ${join(dir.path, name)} (${why})`, { cause: err });
  }
  await dir.sync();
}

export interface PreparedDestination extends Destination {
  /**
   * Only a file: the restore writes the file in parts at their own offsets, as many at once as `fill` likes
   * (partsToFile.ts). Resolves once `fill` resolved and the file is durably in place; rejects leaving nothing.
   * `fill` must settle only after every part it started settled.
   */
  writeParts?(fill: (file: FileParts) => Promise<void>, signal?: AbortSignal): Promise<void>;
  /** Releases what `openDestination` prepared when the restore fails before `write` (no-op after it). */
  discard(): Promise<void>;
}

/** A file written in parts. */
export interface FileParts {
  /** Writes `body` into the file from byte `position` on; the bytes it wrote once all are (not yet fsynced). */
  writePart(body: Readable, position: number, signal: AbortSignal): Promise<number>;
}

const WRITE_BEHIND_BYTES = 32 * 1024 * 1024;

/**
 * Starts an fdatasync of the file every 32 MiB that pass its stages (one at a time, not awaited), so the disk
 * writes while the download goes on and the final fsync has little left to do. A failed fdatasync fails the
 * restore: Linux reports a writeback error once per open file, so the final fsync on the same descriptor may
 * succeed after pages were lost. The writer waits for the one in flight (`settled`) once every byte is written,
 * not at the end of each stage: a part that ends would otherwise stall behind another part's fdatasync. One
 * WriteBehind serves every part of a restore written in parts, so they count their bytes together.
 */
class WriteBehind {
  readonly #file: Pick<FileHandle, 'datasync'>;
  #sinceSync = 0;
  #syncing: Promise<void> | undefined;
  #failed: Error | undefined;

  constructor(file: Pick<FileHandle, 'datasync'>) {
    this.#file = file;
  }

  /** A pass-through that counts the bytes on their way to the file. */
  stage(): Transform {
    return new Transform({
      readableHighWaterMark: 1 << 20,
      writableHighWaterMark: 1 << 20,
      transform: (chunk: Buffer, _enc, done: TransformCallback) => {
        if (this.#failed !== undefined) {
          done(this.#failed);
          return;
        }
        this.#passed(chunk.length);
        done(null, chunk);
      },
    });
  }

  /** Resolves once no fdatasync is in flight; rejects if one failed. */
  async settled(): Promise<void> {
    await this.#syncing;
    if (this.#failed !== undefined) throw this.#failed;
  }

  #passed(bytes: number): void {
    this.#sinceSync += bytes;
    if (this.#sinceSync < WRITE_BEHIND_BYTES || this.#syncing !== undefined) return;
    this.#sinceSync = 0;
    this.#syncing = this.#file
      .datasync()
      .catch((err: unknown) => void (this.#failed ??= err instanceof Error ? err : new Error(String(err))))
      .finally(() => (this.#syncing = undefined));
  }
}
