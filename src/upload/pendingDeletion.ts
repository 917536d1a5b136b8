/**
 * An upload announcement of a segment whose deletion is pending cancels that deletion: the segment is taken
 * out of every pending mark listing it (conditional writes against cleanup's claim). If cleanup has already
 * claimed the mark, the deletion is under way: DeletionInProgressError (retryable) fails the record, and its
 * redelivery stores the segment afresh once the deletion is done.
 *
 * Cost: the marks are looked up through the process's PendingDeletionsIndex (one listing of the marks' prefix
 * per few seconds, each mark read once per container), so an upload pays no request of its own unless it
 * really cancels a deletion (one conditional PUT per mark changed).
 */
import { cancelDeletion, type DeletionMarks, type PendingDeletionsIndex } from '../core/deletionMarks/index.ts';
import { logger } from '../core/logger.ts';
import type { SegmentIdentity } from '../core/objectKeys.ts';

export interface PendingDeletionRuntime {
  readonly deletions: DeletionMarks;
  readonly pendingDeletions: PendingDeletionsIndex;
}

/** Cancels the pending deletion of `identity`, if any; resolves to the number of marks changed. */
export async function cancelPendingDeletion(runtime: PendingDeletionRuntime, identity: SegmentIdentity, what: string): Promise<number> {
  const holding = await runtime.pendingDeletions.marksHolding(identity);
  if (holding.length === 0) return 0;
  const changed = await cancelDeletion(runtime.deletions, holding, identity);
  for (const mark of changed) runtime.pendingDeletions.update(mark);
  if (changed.length > 0) logger.warn('an upload announcement cancelled the pending deletion of its segment', { segment: what, marks: changed.map((m) => m.key) });
  return changed.length;
}
