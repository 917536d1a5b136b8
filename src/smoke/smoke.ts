/**
 * The post-deploy check of `bucket-storage smoke`, run from an ingestion node or an operator's machine with the
 * deployment's configuration: a small generated segment goes the whole way a real one goes, and each step is
 * reported as it passes.
 *   1. generate it (random bytes) and stage it (the same stagers as `ship`), 2. announce it,
 *   3. wait until the upload function stored it (HEAD of its key, current bucket first),
 *   4. restore it (the fetch path) and compare size and SHA-256, 5. announce its deletion, remove local copies.
 * A step that fails stops the run with its typed error; the steps before it were printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IntegrityError, SegmentNotFoundError, StorageError } from '../core/errors.ts';
import { deletionAnnouncementSchema, segmentAnnouncementSchema } from '../core/messages.ts';
import { formatSegmentKey, type SegmentIdentity } from '../core/objectKeys.ts';
import { sendMessage } from '../core/queues.ts';
import type { Runtime } from '../core/runtime.ts';
import { fetchSegment } from '../fetch/fetchSegment.ts';
import { locateSegment } from '../fetch/locate.ts';
import type { SegmentFile } from '../ship/layout.ts';
import type { Stager } from '../ship/stage.ts';

export interface SmokeOptions {
  readonly dataspace: string;
  readonly size: number;
  /** Where the generated file is written on this machine: <dir>/<dataspace>/<segmentId>. */
  readonly dir: string;
  /** Directory the restore writes into (inside S3_STORAGE_RESTORE_ROOT). */
  readonly restoreDir: string;
  readonly timeoutMs: number;
  readonly pollMs?: number;
  /** Prints one step. */
  readonly say: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function smokeId(): string {
  return `smoke-${new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
}

/** Waits until the segment's object is in one of the registry's buckets; a StorageError after `timeoutMs`. */
async function waitStored(runtime: Runtime, key: string, options: SmokeOptions): Promise<{ bucket: string; waitedMs: number }> {
  const started = Date.now();
  for (;;) {
    try {
      const found = await locateSegment(runtime.store, runtime.registry, key);
      return { bucket: found.ref.bucket, waitedMs: Date.now() - started };
    } catch (err) {
      if (!(err instanceof SegmentNotFoundError)) throw err;
    }
    if (Date.now() - started >= options.timeoutMs) {
      const b = runtime.registry.current.bucket;
      throw new StorageError('HeadObject', b, key, `the smoke segment was not stored in s3://${b}/${key} within ${Math.round(options.timeoutMs / 1000)} s: check that the upload function runs (its logs) and the DLQ (bucket-storage redrive --dry-run)`, { retryable: true });
    }
    await sleep(options.pollMs ?? 1000);
  }
}

export async function runSmoke(runtime: Runtime, stager: Stager, options: SmokeOptions): Promise<void> {
  const started = Date.now();
  const identity: SegmentIdentity = { dataspace: options.dataspace, segmentId: smokeId() };
  const name = `${identity.dataspace}/${identity.segmentId}`;
  const bytes = randomBytes(options.size);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const path = join(options.dir, identity.dataspace, identity.segmentId);
  const restored = join(options.restoreDir, `${identity.dataspace}-${identity.segmentId}`);
  try {
    await mkdir(join(options.dir, identity.dataspace), { recursive: true });
    await writeFile(path, bytes);
    const info = await stat(path);
    const file: SegmentFile = { identity, path, relative: `${identity.dataspace}/${identity.segmentId}`, size: info.size, mtimeMs: info.mtimeMs };
    const staged = await stager.stage(file);
    options.say(`smoke 1/5: generated ${name} (${options.size} bytes, sha256 ${sha256.slice(0, 16)}…), staged at ${staged.source}`);

    const message = { version: 1, ...identity, source: staged.source, size: staged.size, sha256: staged.sha256 };
    const messageId = await sendMessage(runtime.clients.sqs, runtime.config, { queue: 'segments', schema: segmentAnnouncementSchema, message, what: 'segment announcement' });
    options.say(`smoke 2/5: announced it (message ${messageId})`);

    const key = formatSegmentKey(runtime.config.keyPrefix, identity);
    const stored = await waitStored(runtime, key, options);
    options.say(`smoke 3/5: stored in s3://${stored.bucket}/${key} after ${(stored.waitedMs / 1000).toFixed(1)} s`);

    // Hashed as written (rehash): the smoke test proves the bytes, not only the digest the upload sealed.
    const answer = await fetchSegment(runtime, { ...identity, destination: pathToFileURL(restored).href }, { rehash: true });
    if (answer.size !== options.size || answer.sha256 !== sha256) {
      throw new IntegrityError('sha256', `${sha256} (${options.size} bytes)`, `${answer.sha256} (${answer.size} bytes)`, `smoke segment ${name} restored from s3://${answer.bucket}/${answer.key}`);
    }
    options.say(`smoke 4/5: restored it from s3://${answer.bucket} and checked it: ${answer.bytesWritten} bytes, sha256 matches`);

    const deletionId = await sendMessage(runtime.clients.sqs, runtime.config, { queue: 'deletions', schema: deletionAnnouncementSchema, message: { version: 1, ...identity }, what: 'deletion announcement' });
    const delay = runtime.config.deletionDelayHours;
    options.say(`smoke 5/5: announced its deletion (message ${deletionId}); cleanup ${delay === 0 ? 'removes the object on its next run' : `marks it on its next run and removes the object ${delay} h later (S3_STORAGE_DELETION_DELAY_HOURS)`}`);
    options.say(`smoke: ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await rm(path, { force: true });
    await rm(restored, { force: true });
  }
}
