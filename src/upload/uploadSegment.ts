/**
 * The one upload function: a segment announcement in, one intact object in the current bucket out.
 *
 *   1. compute the key (objectKeys). The announcement arrives typed: whoever takes it from outside parses it once
 *      with segmentAnnouncementSchema (the upload function's batch parser)
 *   2. open the source (source.ts: a file is opened once, confined to its root) and check its size
 *   3. already stored? a copy in any registered bucket is acknowledged without a copy only when it holds this
 *      content, intact (its SHA-256: announced, or read from the source); otherwise refused (storedCopy.ts)
 *   4. register the current bucket if this is its first object (a HEAD proves it exists; registryWrites.ts),
 *      abort what a crashed attempt left, then stream the object (writeObject.ts)
 *   5. USING_EPHEMERAL_DISKS (or a staged copy to delete): read the object back before acknowledging (readBack.ts)
 *   6. S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: delete the staged copy once the stored one is verified (stagedCopy.ts)
 */
import type { Runtime } from '../core/runtime.ts';
import { IntegrityError } from '../core/errors.ts';
import type { SegmentAnnouncement } from '../core/messages.ts';
import { formatSegmentKey, type SegmentIdentity } from '../core/objectKeys.ts';
import type { S3Store } from '../core/s3Store.ts';
import { verifyReadBack } from './readBack.ts';
import { openSource } from './source.ts';
import { deleteStagedCopy, type StagedCopyOutcome } from './stagedCopy.ts';
import { checkStoredContent, checkStoredCopy, findStoredCopy } from './storedCopy.ts';
import { digestOf, writeSegmentObject } from './writeObject.ts';

/** What an upload needs of the runtime (tests pass a store that wraps the real one). */
export type UploadRuntime = Pick<Runtime, 'config' | 'keyRing' | 'registry' | 'registrar'> & {
  readonly store: Pick<S3Store, 'head' | 'get' | 'put' | 'abortIncompleteUploads'>;
  /** s3:// sources are read, and staged copies deleted, with the function's role. */
  readonly roleStore: Pick<S3Store, 'head' | 'get' | 'deleteObject'>;
};

export interface UploadResult {
  readonly outcome: 'uploaded' | 'already-stored';
  readonly bucket: string;
  readonly key: string;
  /** Plaintext bytes of the segment. */
  readonly size: number;
  /** Bytes stored in the bucket. */
  readonly storedSize: number;
  /** Hex SHA-256 of the plaintext (computed while streaming; for already-stored segments, the one compared). */
  readonly sha256?: string;
  /** True when the object was read back and compared (USING_EPHEMERAL_DISKS, or a staged copy to delete). */
  readonly verified: boolean;
  /** With S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD and a source in the staging bucket: what became of that copy. */
  readonly stagedCopy?: StagedCopyOutcome;
}

/**
 * Uploads the announced segment, or acknowledges it when it is already stored.
 * @example
 *   await uploadSegment(await createRuntime(), { version: 1, dataspace: 'logs', segmentId: 'seg-1', source: 'file:///mnt/segments/seg-1' });
 */
export async function uploadSegment(runtime: UploadRuntime, announcement: SegmentAnnouncement): Promise<UploadResult> {
  const identity: SegmentIdentity = { dataspace: announcement.dataspace, segmentId: announcement.segmentId };
  const key = formatSegmentKey(runtime.config.keyPrefix, identity);
  const what = `segment ${identity.dataspace}/${identity.segmentId} (${announcement.source})`;

  const source = await openSource(runtime, announcement.source);
  try {
    if (announcement.size !== undefined && announcement.size !== source.size) {
      throw new IntegrityError('size', String(announcement.size), String(source.size), `${what}: the source's size differs from the announcement`);
    }
    // The staged copy is deleted only after the stored copy is verified (never when anything above or below throws).
    const releaseStaged = source.staged !== undefined && runtime.config.staging?.deleteAfterUpload === true ? source.staged : undefined;
    const stored = await findStoredCopy(runtime, key);
    if (stored !== undefined) {
      checkStoredCopy(stored, source.size, what);
      const sha256 = announcement.sha256 ?? (await digestOf(source, what));
      await checkStoredContent(runtime, stored, identity, sha256, what);
      const result: UploadResult = { outcome: 'already-stored', bucket: stored.ref.bucket, key, size: source.size, storedSize: stored.info.size, sha256, verified: false };
      return releaseStaged ? { ...result, stagedCopy: await deleteStagedCopy(runtime, releaseStaged, what) } : result;
    }

    const target = runtime.registry.current;
    // Registered before the object is written: a crash never leaves an object in a bucket the registry omits.
    await runtime.registrar.ensureCurrentRegistered();
    // A redelivery after a crash: parts of the dead attempt are aborted first, so none are left behind.
    await runtime.store.abortIncompleteUploads(target, key);
    const written = await writeSegmentObject(runtime, { target, key, identity, source, sha256: announcement.sha256, what });
    const verify = runtime.config.ephemeralDisks || releaseStaged !== undefined;
    if (verify) await verifyReadBack(runtime.store, target, key, written, what);
    const result: UploadResult = { outcome: 'uploaded', bucket: target.bucket, key, size: source.size, storedSize: written.storedSize, sha256: written.sha256, verified: verify };
    return releaseStaged ? { ...result, stagedCopy: await deleteStagedCopy(runtime, releaseStaged, what) } : result;
  } finally {
    await source.close();
  }
}
