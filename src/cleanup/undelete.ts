/**
 * `bucket-storage undelete`: cancels the pending deletion of one segment, in every mark that lists it, with
 * conditional writes against a concurrent cleanup run (see core/deletionMarks/cancel.ts). Fails with
 * DeletionInProgressError when cleanup has already claimed a mark listing it, and with NoPendingDeletionError
 * when no mark lists it.
 */
import { cancelDeletion, markHolds, readAllMarks, type ReadMark } from '../core/deletionMarks/index.ts';
import { NoPendingDeletionError } from '../core/errors.ts';
import { validateIdentity, type SegmentIdentity } from '../core/objectKeys.ts';
import type { Runtime } from '../core/runtime.ts';

export async function undeleteSegment(runtime: Pick<Runtime, 'deletions'>, identity: SegmentIdentity): Promise<ReadMark[]> {
  const { dataspace, segmentId } = validateIdentity(identity);
  const holding = (await readAllMarks(runtime.deletions)).read.filter((m) => markHolds(m.doc, identity));
  const changed = await cancelDeletion(runtime.deletions, holding, identity);
  const segment = `${dataspace}/${segmentId}`;
  if (holding.length === 0) {
    throw new NoPendingDeletionError(
      segment,
      `no pending deletion of ${segment} in ${runtime.deletions.where}: it was never announced, was carried out already, or its announcement is still in the deletions queue (cleanup records announcements as pending deletions at its next run; retry after it)`,
    );
  }
  if (changed.length === 0) throw new NoPendingDeletionError(segment, `the deletion of ${segment} is no longer pending: cleanup carried it out (or someone cancelled it) while undelete ran`);
  return changed;
}
