/**
 * Cancelling a pending deletion: the segment is taken out of every pending mark that lists it, each with a
 * conditional write on the version read. Cleanup claims a mark with a conditional write too, so exactly one
 * of the two wins: a cancellation that lost finds the mark claimed ("applying") and reports the deletion as in
 * progress (DeletionInProgressError); a claim that lost reads the mark again without the segment.
 */
import { DeletionInProgressError, StorageError } from '../errors.ts';
import type { SegmentIdentity } from '../objectKeys.ts';
import { isConditionFailure } from '../s3Store.ts';
import { identityId, markHolds } from './document.ts';
import type { DeletionMarks, ReadMark } from './markStore.ts';

const MAX_ATTEMPTS = 10;

const pause = (attempt: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.random() * Math.min(1_000, 25 * 2 ** attempt)));

/**
 * Takes `identity` out of `mark` (and of the versions that replace it meanwhile). Resolves to the mark's new
 * version, or undefined when the mark no longer lists the segment (or is gone). Throws DeletionInProgressError
 * when the mark is claimed.
 */
export async function cancelInMark(marks: DeletionMarks, mark: ReadMark, identity: SegmentIdentity): Promise<ReadMark | undefined> {
  let current: ReadMark | undefined = mark;
  for (let attempt = 1; current !== undefined && markHolds(current.doc, identity); attempt++) {
    if (current.doc.state === 'applying') throw new DeletionInProgressError(identityId(identity), current.key);
    const doc = { ...current.doc, segments: current.doc.segments.filter((s) => s.dataspace !== identity.dataspace || s.segmentId !== identity.segmentId) };
    try {
      return await marks.replace(current, doc);
    } catch (err) {
      // Changed (412/409) or removed (404: If-Match on a key that is gone) since it was read: read it again.
      const stale = isConditionFailure(err) || (err instanceof StorageError && err.httpStatus === 404);
      if (!stale || attempt >= MAX_ATTEMPTS) throw err;
    }
    await pause(attempt);
    current = await marks.read(current.key);
  }
  return undefined;
}

/** Cancels the pending deletion of `identity` in each of `candidates`; resolves to the marks changed. */
export async function cancelDeletion(marks: DeletionMarks, candidates: readonly ReadMark[], identity: SegmentIdentity): Promise<ReadMark[]> {
  const changed: ReadMark[] = [];
  for (const mark of candidates) {
    const updated = await cancelInMark(marks, mark, identity);
    if (updated !== undefined) changed.push(updated);
  }
  return changed;
}
