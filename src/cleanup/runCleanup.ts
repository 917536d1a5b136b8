/**
 * The one cleanup run. Deletions wait out a grace period (S3_STORAGE_DELETION_DELAY_HOURS) as deletion marks
 * in the state bucket, so a wrong batch of announcements can be undone (`bucket-storage undelete`):
 *
 *   1. carry out the marks that are due (applyDueMarks): claim, delete from every registered bucket, remove;
 *   2. drain the deletions queue into new marks (MarkingBatch): a message leaves the queue only once its
 *      mark is stored; long polling, so the run ends when the budget is spent or the queue is really empty;
 *   3. with a delay of 0, carry out at once the marks this run wrote.
 *
 * - It never lists-and-deletes: the only keys it deletes are computed by objectKeys.formatSegmentKey from
 *   validated announcements recorded in marks, so nothing else in a bucket, and nothing under another prefix,
 *   can be removed.
 * - Time is the marks' due time, from the clock (`now`, injected in tests), never the SQS receive count.
 * - A malformed message is logged and left, so the queue's redrive policy moves it to the DLQ.
 * - It stops taking messages while `safetyMarginMs` of the budget is left, so the batch in hand finishes.
 */
import type { Clients } from '../core/clients.ts';
import type { DeletionMarks } from '../core/deletionMarks/index.ts';
import { errorFields, logger } from '../core/logger.ts';
import { requireQueueUrl } from '../core/queues.ts';
import type { Runtime } from '../core/runtime.ts';
import type { S3Store } from '../core/s3Store.ts';
import { applyDueMarks, emptyDueOutcome, type DueContext, type DueOutcome } from './applyDueMarks.ts';
import { DeletionsQueue } from './deletionsQueue.ts';
import { MarkingBatch, type MarkingCounts } from './markingBatch.ts';

/** What a cleanup run needs of the runtime (tests pass stores that count requests). */
export type CleanupRuntime = Pick<Runtime, 'config' | 'registry'> & {
  readonly deletions: DeletionMarks;
  readonly store: Pick<S3Store, 'deleteBatch'>;
  readonly clients: Pick<Clients, 'sqs'>;
};

/** Seconds a receive waits for messages: long enough that an empty answer means an empty queue. */
export const LONG_POLL_SECONDS = 5;
/** Received messages stay hidden this long past the run's deadline (by which the run has ended, or was ended
 *  by Lambda's timeout): a killed run's messages come back soon after, never while it may still mark them. */
export const VISIBILITY_MARGIN_SECONDS = 10;

export interface CleanupOptions {
  /** Milliseconds this run may take in all. */
  readonly budgetMs: number;
  /** Stop receiving while this much of the budget is left (default: a quarter of it, at most 30 s). */
  readonly safetyMarginMs?: number;
  readonly dryRun?: boolean;
  /** The clock, in milliseconds since the epoch: budget and due times (tests inject one). */
  readonly now?: () => number;
  /** How long received messages stay hidden (default: the budget plus VISIBILITY_MARGIN_SECONDS). */
  readonly visibilityTimeoutSeconds?: number;
  /** Long-poll wait of each receive (default LONG_POLL_SECONDS; never beyond the budget). */
  readonly waitTimeSeconds?: number;
}

export interface CleanupReport extends Omit<MarkingCounts, 'earliestDue' | 'failures'>, Omit<DueOutcome, 'failures'> {
  readonly dryRun: boolean;
  readonly delayHours: number;
  readonly received: number;
  readonly malformed: number;
  readonly failures: readonly string[];
}

export async function runCleanupOnce(runtime: CleanupRuntime, options: CleanupOptions): Promise<CleanupReport> {
  const queueUrl = requireQueueUrl(runtime.config, 'deletions');
  const now = options.now ?? Date.now;
  const deadline = now() + options.budgetMs;
  const margin = options.safetyMarginMs ?? Math.min(30_000, options.budgetMs / 4);
  const keepGoing = () => deadline - now() > margin;
  const dryRun = options.dryRun ?? runtime.config.cleanupDryRun;
  const due: DueContext = { marks: runtime.deletions, store: runtime.store, buckets: await runtime.registry.all(), keyPrefix: runtime.config.keyPrefix, dryRun };

  const applied = [await applyDueMarks(due, new Date(now()), keepGoing)];
  // Messages stay invisible to other runs until well after this run's deadline.
  const visibility = options.visibilityTimeoutSeconds ?? Math.ceil(options.budgetMs / 1000) + VISIBILITY_MARGIN_SECONDS;
  const queue = new DeletionsQueue(runtime.clients.sqs, queueUrl, visibility);
  const marking = new MarkingBatch(runtime.deletions, queue, runtime.config.deletionDelayHours, dryRun);
  const drained = await drain(queue, marking, { now, keepGoing, wait: () => Math.max(0, Math.min(options.waitTimeSeconds ?? LONG_POLL_SECONDS, Math.floor((deadline - now() - margin) / 1000))) });
  const earliest = marking.counts.earliestDue;
  if (earliest !== undefined && earliest.getTime() <= now()) applied.push(await applyDueMarks(due, new Date(now()), () => now() < deadline));
  return report(dryRun, runtime.config.deletionDelayHours, drained, marking.counts, applied);
}

/**
 * Receives until the queue is really empty (a long poll that found nothing) or the budget is spent, gathering
 * deletions into marks; the last, partial mark is written at the end. A receive that fails (after the SDK's
 * retries) ends the draining: what was gathered is still marked, the rest waits for the next run.
 */
async function drain(queue: DeletionsQueue, marking: MarkingBatch, clock: { now: () => number; keepGoing: () => boolean; wait: () => number }): Promise<{ received: number; malformed: number }> {
  const counts = { received: 0, malformed: 0 };
  while (clock.keepGoing()) {
    let batch;
    try {
      batch = await queue.receive(clock.wait());
    } catch (err) {
      marking.counts.failures.push(String(errorFields(err).errorMessage));
      logger.error('cleanup could not receive from the deletions queue; the rest waits for the next run', errorFields(err));
      break;
    }
    if (batch.received === 0) break;
    counts.received += batch.received;
    counts.malformed += batch.malformed;
    await marking.add(batch.deletions, new Date(clock.now()));
  }
  await marking.flush(new Date(clock.now()));
  return counts;
}

function report(dryRun: boolean, delayHours: number, queue: { received: number; malformed: number }, marking: MarkingCounts, applied: readonly DueOutcome[]): CleanupReport {
  const total = emptyDueOutcome();
  for (const a of applied) {
    total.marksApplied += a.marksApplied;
    total.segmentsDeleted += a.segmentsDeleted;
    total.deleteRequests += a.deleteRequests;
    total.failures.push(...a.failures);
    for (const [bucket, n] of Object.entries(a.deletedPerBucket)) total.deletedPerBucket[bucket] = (total.deletedPerBucket[bucket] ?? 0) + n;
  }
  const { earliestDue: _earliest, failures, ...counts } = marking;
  return { dryRun, delayHours, ...queue, ...counts, ...total, failures: [...failures, ...total.failures] };
}
