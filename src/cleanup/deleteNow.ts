/**
 * `bucket-storage delete --now`: the operator skips the grace period for one segment. The deletion is first
 * recorded as a mark due now (so a kill part-way leaves it for the next cleanup run to finish), carried out at
 * once exactly as cleanup carries out a due mark (claim, delete from every registered bucket, remove the
 * mark), and the segment is then taken out of the other pending marks that still list it.
 */
import { cancelDeletion, markHolds, readAllMarks } from '../core/deletionMarks/index.ts';
import { DeletionInProgressError } from '../core/errors.ts';
import { validateIdentity, type SegmentIdentity } from '../core/objectKeys.ts';
import type { Runtime } from '../core/runtime.ts';
import { applyMarks, type DueOutcome } from './applyDueMarks.ts';

export interface DeleteNowResult extends DueOutcome {
  readonly mark: string;
  /** Other pending marks that listed the segment, from which it was taken out. */
  readonly cancelledElsewhere: number;
}

export async function deleteSegmentNow(runtime: Pick<Runtime, 'config' | 'registry' | 'store' | 'deletions'>, identity: SegmentIdentity, now: Date = new Date()): Promise<DeleteNowResult> {
  validateIdentity(identity);
  const mark = await runtime.deletions.create([identity], now, 0);
  const ctx = { marks: runtime.deletions, store: runtime.store, buckets: await runtime.registry.all(), keyPrefix: runtime.config.keyPrefix, dryRun: false };
  const outcome = await applyMarks(ctx, [mark.key], now, () => true);
  let cancelledElsewhere = 0;
  if (outcome.marksApplied === 1) {
    const others = (await readAllMarks(runtime.deletions)).read.filter((m) => m.key !== mark.key && m.doc.state === 'pending' && markHolds(m.doc, identity));
    for (const other of others) {
      // A mark claimed meanwhile deletes the segment again: harmless, it is gone already.
      cancelledElsewhere += await cancelDeletion(runtime.deletions, [other], identity).then(
        (changed) => changed.length,
        (err: unknown) => {
          if (err instanceof DeletionInProgressError) return 0;
          throw err;
        },
      );
    }
  }
  return { ...outcome, mark: mark.key, cancelledElsewhere };
}
