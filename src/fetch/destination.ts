/**
 * Where a restore writes. Both kinds see the end of their input only after every byte verified (see
 * src/core/verifyingMeter.ts), and both leave nothing behind on failure:
 *   file://  confined to S3_STORAGE_RESTORE_ROOT (symlinks resolved); written to a temporary file in the same
 *            directory, fsynced, then renamed over the destination; on failure the temporary file is removed.
 *   s3://    one streaming upload (multipart above the part size); on failure the multipart upload is aborted
 *            and no object is created.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../core/config.ts';
import { LocationError } from '../core/errors.ts';
import { resolveNewInsideRoot, type Location } from '../core/locations.ts';
import type { S3Store } from '../core/s3Store.ts';

export interface Destination {
  /** What the answer and messages call it. */
  readonly url: string;
  /** Consumes `body` to its end; resolves once the bytes are durably in place, rejects leaving nothing. */
  write(body: Readable, signal?: AbortSignal): Promise<void>;
}

/** The store operations an s3:// destination needs. */
export type PutStore = Pick<S3Store, 'put'>;

/**
 * Checks a destination before anything is read from S3: a file:// path must resolve inside the restore root
 * and its directory must accept a new file (a temporary file is created now, so an unwritable destination
 * fails before any GET).
 */
export async function openDestination(location: Location, config: Config, store: PutStore): Promise<PreparedDestination> {
  return location.kind === 's3' ? s3Destination(location, config, store) : fileDestination(location, config);
}

/** One streaming upload (multipart above the part size); on failure lib-storage aborts it. */
function s3Destination(location: Extract<Location, { kind: 's3' }>, config: Config, store: PutStore): PreparedDestination {
  const ref = { bucket: location.bucket, region: config.region };
  return {
    url: `s3://${location.bucket}/${location.key}`,
    async write(body, signal) {
      // A failure of the body (authentication, integrity) is the restore's error, not the upload's.
      let bodyError: unknown;
      body.once('error', (err) => (bodyError = err));
      try {
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

/** A temporary file beside the destination, fsynced and renamed into place; removed on failure. */
async function fileDestination(location: Extract<Location, { kind: 'file' }>, config: Config): Promise<PreparedDestination> {
  const target = await resolveNewInsideRoot(location.path, config.restoreRoot, 'S3_STORAGE_RESTORE_ROOT');
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.restoring`);
  let file: FileHandle;
  try {
    file = await open(temp, 'wx', 0o600);
  } catch (err) {
    throw new LocationError(location.path, `cannot create a file in ${dirname(target)} (${errnoCode(err)}): check that the directory is writable`, { cause: err });
  }
  let settled = false;
  return {
    url: `file://${target}`,
    async write(body, signal) {
      settled = true;
      try {
        // The stream owns the handle from here: it fsyncs (flush) and closes it when the body ended.
        await pipeline(body, writeBehind(file), file.createWriteStream({ flush: true, highWaterMark: 1 << 20 }), signal ? { signal } : {});
        await moveIntoPlace(temp, target, location.path);
      } catch (err) {
        await unlink(temp).catch(() => undefined);
        throw err;
      }
    },
    async discard() {
      if (settled) return;
      settled = true;
      await file.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    },
  };
}

/** Renames the finished temporary file over the destination and makes the rename durable. */
async function moveIntoPlace(temp: string, target: string, path: string): Promise<void> {
  try {
    await rename(temp, target);
  } catch (err) {
    throw new LocationError(path, `cannot move the restored file into place at ${target} (${errnoCode(err)})`, { cause: err });
  }
  await syncDirectory(dirname(target));
}

export interface PreparedDestination extends Destination {
  /** Releases what `openDestination` prepared when the restore fails before `write` (no-op after it). */
  discard(): Promise<void>;
}

/** Makes a rename durable: fsync of the directory (best effort where the platform does not allow it). */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (handle === undefined) return;
  await handle.sync().catch(() => undefined);
  await handle.close().catch(() => undefined);
}

const WRITE_BEHIND_BYTES = 32 * 1024 * 1024;

/**
 * Starts an fdatasync of the file every 32 MiB that pass (one at a time, not awaited), so the disk writes
 * while the download goes on and the final fsync has little left to do. Errors are left to that final fsync.
 */
function writeBehind(file: FileHandle): Transform {
  let sinceSync = 0;
  let syncing = false;
  return new Transform({
    readableHighWaterMark: 1 << 20,
    writableHighWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      sinceSync += chunk.length;
      if (sinceSync >= WRITE_BEHIND_BYTES && !syncing) {
        sinceSync = 0;
        syncing = true;
        file.datasync().then(
          () => (syncing = false),
          () => (syncing = false),
        );
      }
      done(null, chunk);
    },
  });
}

function errnoCode(err: unknown): string {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : 'error';
}
