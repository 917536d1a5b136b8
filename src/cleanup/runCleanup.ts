/**
 * The one cleanup run: drains the deletions queue within a time budget and deletes each announced segment's
 * object from every registered bucket.
 *
 * - It never lists-and-deletes: the only keys it deletes are computed by objectKeys.formatSegmentKey from
 *   validated announcements, so nothing else in a bucket, and nothing under another prefix, can be removed.
 * - Keys are deleted in batches of up to 1,000 with DeleteObjects, every bucket in parallel (deleteEverywhere).
 * - A message leaves the queue only when its key is gone from every bucket. A per-key error, or a bucket that
 *   is missing or denies access, leaves the message for the next run (the DLQ takes it after N receives).
 * - A malformed message is logged and left too, so the queue's redrive policy moves it to the DLQ.
 * - It stops taking messages while `safetyMarginMs` of the budget is left, so the batch in hand finishes.
 */
import type { Clients } from '../core/clients.ts';
import { logger } from '../core/logger.ts';
import { requireQueueUrl } from '../core/queues.ts';
import type { Runtime } from '../core/runtime.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';
import { deleteEverywhere, KEYS_PER_REQUEST } from './deleteEverywhere.ts';
import { DeletionsQueue, type ReceivedDeletion } from './deletionsQueue.ts';

/** What a cleanup run needs of the runtime (tests pass a store that counts requests). */
export type CleanupRuntime = Pick<Runtime, 'config' | 'registry'> & {
  readonly store: Pick<S3Store, 'deleteBatch'>;
  readonly clients: Pick<Clients, 'sqs'>;
};

export interface CleanupOptions {
  /** Milliseconds this run may take in all. */
  readonly budgetMs: number;
  /** Stop receiving while this much of the budget is left (default: a quarter of it, at most 30 s). */
  readonly safetyMarginMs?: number;
  readonly dryRun?: boolean;
  readonly now?: () => number;
  /** How long received messages stay hidden (default: the budget plus a minute). */
  readonly visibilityTimeoutSeconds?: number;
}

export interface CleanupReport {
  readonly dryRun: boolean;
  readonly received: number;
  readonly malformed: number;
  /** Messages deleted from the queue: their key is gone from every bucket. */
  readonly completed: number;
  /** Messages left for the next run (a bucket failed for their key). */
  readonly left: number;
  readonly deleteRequests: number;
  /** Per bucket: keys deleted (or, in a dry run, that would be). */
  readonly deletedPerBucket: Readonly<Record<string, number>>;
  readonly failures: readonly string[];
}

/** The report while the run fills it in. */
interface Counts extends CleanupReport {
  received: number;
  malformed: number;
  completed: number;
  left: number;
  deleteRequests: number;
  deletedPerBucket: Record<string, number>;
  failures: string[];
}

/** Deletions received and not yet applied, and what the run did so far. */
class CleanupBatch {
  readonly counts: Counts;
  #pending: ReceivedDeletion[] = [];

  constructor(
    private readonly runtime: CleanupRuntime,
    private readonly queue: DeletionsQueue,
    private readonly buckets: readonly BucketRef[],
    dryRun: boolean,
  ) {
    this.counts = { dryRun, received: 0, malformed: 0, completed: 0, left: 0, deleteRequests: 0, deletedPerBucket: {}, failures: [] };
  }

  add(deletions: readonly ReceivedDeletion[]): void {
    this.#pending.push(...deletions);
  }

  get distinctKeys(): number {
    return new Set(this.#pending.map((p) => p.key)).size;
  }

  /** Applies the pending deletions to every bucket and acknowledges the messages whose key is gone. */
  async flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    const keys = [...new Set(batch.map((p) => p.key))];
    if (this.counts.dryRun) {
      for (const ref of this.buckets) this.#countDeleted(ref.bucket, keys.length);
      logger.info('cleanup dry run: would delete', { keys: keys.length, buckets: this.buckets.map((b) => b.bucket), sample: keys.slice(0, 10) });
      this.counts.left += batch.length;
      return;
    }
    const outcome = await deleteEverywhere(this.runtime.store, this.buckets, keys);
    this.counts.deleteRequests += outcome.requests;
    this.counts.failures.push(...outcome.failures);
    for (const [bucket, n] of Object.entries(outcome.deletedPerBucket)) this.#countDeleted(bucket, n);
    const done = batch.filter((p) => !outcome.failedKeys.has(p.key));
    const confirmed = await this.queue.acknowledge(done);
    this.counts.completed += confirmed;
    this.counts.left += batch.length - confirmed;
  }

  #countDeleted(bucket: string, n: number): void {
    this.counts.deletedPerBucket[bucket] = (this.counts.deletedPerBucket[bucket] ?? 0) + n;
  }
}

export async function runCleanupOnce(runtime: CleanupRuntime, options: CleanupOptions): Promise<CleanupReport> {
  const queueUrl = requireQueueUrl(runtime.config, 'deletions');
  const now = options.now ?? Date.now;
  const deadline = now() + options.budgetMs;
  const margin = options.safetyMarginMs ?? Math.min(30_000, options.budgetMs / 4);
  // Messages stay invisible to other runs until well after this run's deadline.
  const visibility = options.visibilityTimeoutSeconds ?? Math.ceil(options.budgetMs / 1000) + 60;
  const queue = new DeletionsQueue(runtime.clients.sqs, queueUrl, runtime.config.keyPrefix, visibility);
  const batch = new CleanupBatch(runtime, queue, await runtime.registry.all(), options.dryRun ?? runtime.config.cleanupDryRun);
  while (deadline - now() > margin) {
    const received = await queue.receive();
    if (received.received === 0) break;
    batch.counts.received += received.received;
    batch.counts.malformed += received.malformed;
    batch.add(received.deletions);
    if (batch.distinctKeys >= KEYS_PER_REQUEST) await batch.flush();
  }
  await batch.flush();
  return batch.counts;
}
