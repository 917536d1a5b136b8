/**
 * The one upload function: a segment announcement in, one intact object in the current bucket out.
 *
 *   1. compute the key (objectKeys). The announcement arrives typed: whoever takes it from outside parses it once
 *      with segmentAnnouncementSchema (the upload function's batch parser)
 *   2. open the source (source.ts: a file is opened once, confined to its root) and check its size
 *   3. a pending deletion of the segment is cancelled (pendingDeletion.ts)
 *   4. already stored? a copy in any registered bucket is acknowledged without a copy only when it holds this
 *      content, intact (its SHA-256: announced, or read from the source); otherwise refused (storedCopy.ts)
 *   5. abort what a crashed attempt left (multipart uploads of the key older than the upload timeout, so a live
 *      twin's is never touched), then stream the object, created only if the key is free (If-None-Match: *);
 *      a twin delivery that created it first is checked like any already-stored copy (writeObject.ts)
 *   6. USING_EPHEMERAL_DISKS (or a staged copy to delete): read the object back before acknowledging (readBack.ts)
 *   7. S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: delete the staged copy once the stored one is verified (stagedCopy.ts)
 */
import type { Runtime } from '../core/runtime.ts';
import { IntegrityError, StorageError } from '../core/errors.ts';
import type { SegmentAnnouncement } from '../core/messages.ts';
import { formatSegmentKey, type SegmentIdentity } from '../core/objectKeys.ts';
import type { S3Store } from '../core/s3Store.ts';
import { cancelPendingDeletion } from './pendingDeletion.ts';
import { verifyReadBack } from './readBack.ts';
import { openSource } from './source.ts';
import { deleteStagedCopy, type StagedCopyOutcome } from './stagedCopy.ts';
import { checkStoredContent, checkStoredCopy, findStoredCopy, storedCopyIn, type StoredCopy } from './storedCopy.ts';
import { digestOf, writeSegmentObject } from './writeObject.ts';
import type { SegmentSource } from './source.ts';

/** What an upload needs of the runtime (tests pass a store that wraps the real one). */
export type UploadRuntime = Pick<Runtime, 'config' | 'keyRing' | 'registry' | 'deletions' | 'pendingDeletions'> & {
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
  /** Deletion marks from which this announcement cancelled the segment's pending deletion. */
  readonly cancelledDeletions: number;
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
    const finish = async (result: UploadResult): Promise<UploadResult> => (releaseStaged ? { ...result, stagedCopy: await deleteStagedCopy(runtime, releaseStaged, what) } : result);
    const cancelledDeletions = await cancelPendingDeletion(runtime, identity, what);
    const found = await findStoredCopy(runtime, key);
    if (found !== undefined) return finish({ ...(await acknowledgeStored(runtime, { stored: found, identity, source, sha256: announcement.sha256, what })), cancelledDeletions });

    const target = runtime.registry.current;
    // A redelivery after a crash: parts of the dead attempt are aborted first, so none are left behind. Only
    // uploads older than the upload timeout are: a younger one may be a live twin delivery of this announcement.
    await runtime.store.abortIncompleteUploads(target, key, new Date(Date.now() - runtime.config.uploadTimeoutSeconds * 1000));
    const written = await writeSegmentObject(runtime, { target, key, identity, source, sha256: announcement.sha256, what });
    if (written.outcome === 'key-taken') {
      // A twin delivery created the object first (S3 refused ours with 412): checked like any stored copy.
      const twin = await storedCopyIn(runtime.store, target, key);
      if (twin === undefined) throw new StorageError('PutObject', target.bucket, key, `${what}: S3 refused the write (the key exists) but s3://${target.bucket}/${key} holds no segment object`, { retryable: true, httpStatus: 412 });
      return finish({ ...(await acknowledgeStored(runtime, { stored: twin, identity, source, sha256: announcement.sha256 ?? written.sha256, what })), cancelledDeletions });
    }
    const verify = runtime.config.ephemeralDisks || releaseStaged !== undefined;
    if (verify) await verifyReadBack(runtime.store, target, key, written, what);
    return finish({ outcome: 'uploaded', bucket: target.bucket, key, size: source.size, storedSize: written.storedSize, sha256: written.sha256, verified: verify, cancelledDeletions });
  } finally {
    await source.close();
  }
}

interface StoredCheck {
  readonly stored: StoredCopy;
  readonly identity: SegmentIdentity;
  readonly source: SegmentSource;
  /** The segment's SHA-256 when known (announced, or computed while writing); else read from the source. */
  readonly sha256: string | undefined;
  readonly what: string;
}

/** An already-stored copy is acknowledged only when it holds this content, intact (storedCopy.ts); else throws. */
async function acknowledgeStored(runtime: UploadRuntime, check: StoredCheck): Promise<Omit<UploadResult, 'cancelledDeletions'>> {
  const { stored, source, what } = check;
  checkStoredCopy(stored, source.size, what);
  const sha256 = check.sha256 ?? (await digestOf(source, what));
  await checkStoredContent(runtime, stored, check.identity, sha256, what);
  return { outcome: 'already-stored', bucket: stored.ref.bucket, key: stored.key, size: source.size, storedSize: stored.info.size, sha256, verified: false };
}
