/**
 * The one cleanup run: drains the deletions queue within a time budget and deletes each announced segment's
 * object from every registered bucket.
 *
 * - It never lists-and-deletes: the only keys it deletes are computed by objectKeys.formatSegmentKey from
 *   validated announcements, so nothing else in a bucket, and nothing under another prefix, can be removed.
 * - Keys are deleted in batches of up to 1,000 with DeleteObjects, every bucket in parallel.
 * - A message leaves the queue only when its key is gone from every bucket. A per-key error, or a bucket that
 *   is missing or denies access, leaves the message for the next run (the DLQ takes it after N receives).
 * - A malformed message is logged and left too, so the queue's redrive policy moves it to the DLQ.
 * - It stops taking messages while `safetyMarginMs` of the budget is left, so the batch in hand finishes.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import type { Config } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import { errorFields, logger } from '../core/logger.ts';
import { deletionAnnouncementSchema, parseJsonWith } from '../core/messages.ts';
import { formatSegmentKey } from '../core/objectKeys.ts';
import type { S3Store } from '../core/s3Store.ts';

export interface CleanupContext {
  readonly config: Config;
  readonly store: Pick<S3Store, 'deleteBatch'>;
  readonly sqs: SQSClient;
  readonly registry: BucketRegistry;
}

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

const BATCH_KEYS = 1000;

interface Pending {
  readonly message: Message;
  readonly key: string;
}

export async function runCleanupOnce(ctx: CleanupContext, options: CleanupOptions): Promise<CleanupReport> {
  const queueUrl = ctx.config.deletionsQueueUrl;
  if (queueUrl === undefined) throw new ConfigError('S3_STORAGE_DELETIONS_QUEUE_URL', 'S3_STORAGE_DELETIONS_QUEUE_URL is not set; cleanup drains that queue');
  const now = options.now ?? Date.now;
  const deadline = now() + options.budgetMs;
  const margin = options.safetyMarginMs ?? Math.min(30_000, options.budgetMs / 4);
  const dryRun = options.dryRun ?? ctx.config.cleanupDryRun;
  const buckets = await ctx.registry.all();
  const report = { received: 0, malformed: 0, completed: 0, left: 0, deleteRequests: 0, deletedPerBucket: {} as Record<string, number>, failures: [] as string[] };
  // Messages stay invisible to other runs until well after this run's deadline.
  const visibility = options.visibilityTimeoutSeconds ?? Math.ceil(options.budgetMs / 1000) + 60;
  let pending: Pending[] = [];

  const flush = async () => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const keys = [...new Set(batch.map((p) => p.key))];
    const failedKeys = new Set<string>();
    if (!dryRun) {
      await Promise.all(
        buckets.map(async (ref) => {
          try {
            for (let i = 0; i < keys.length; i += BATCH_KEYS) {
              const slice = keys.slice(i, i + BATCH_KEYS);
              report.deleteRequests++;
              const failed = await ctx.store.deleteBatch(ref, slice);
              for (const [key, reason] of failed) {
                failedKeys.add(key);
                report.failures.push(`s3://${ref.bucket}/${key}: ${reason}`);
              }
              report.deletedPerBucket[ref.bucket] = (report.deletedPerBucket[ref.bucket] ?? 0) + slice.length - failed.size;
            }
          } catch (err) {
            // The whole bucket failed (missing, denied, unreachable): every message stays for the next run.
            for (const key of keys) failedKeys.add(key);
            report.failures.push(`s3://${ref.bucket}: ${err instanceof Error ? err.message : String(err)}`);
            logger.error('cleanup could not delete from a registered bucket; its messages are kept', { bucket: ref.bucket, ...errorFields(err) });
          }
        }),
      );
    } else {
      for (const ref of buckets) report.deletedPerBucket[ref.bucket] = (report.deletedPerBucket[ref.bucket] ?? 0) + keys.length;
      logger.info('cleanup dry run: would delete', { keys: keys.length, buckets: buckets.map((b) => b.bucket), sample: keys.slice(0, 10) });
      report.left += batch.length;
      return;
    }
    const done = batch.filter((p) => !failedKeys.has(p.key));
    report.left += batch.length - done.length;
    for (let i = 0; i < done.length; i += 10) {
      const group = done.slice(i, i + 10);
      const out = await ctx.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: group.map((p, j) => ({ Id: String(j), ReceiptHandle: p.message.ReceiptHandle ?? '' })) }));
      report.completed += group.length - (out.Failed?.length ?? 0);
      report.left += out.Failed?.length ?? 0;
    }
  };

  while (deadline - now() > margin) {
    const out = await ctx.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: visibility, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) break;
    for (const message of messages) {
      report.received++;
      try {
        const deletion = parseJsonWith(deletionAnnouncementSchema, message.Body ?? '', 'deletion announcement');
        pending.push({ message, key: formatSegmentKey(ctx.config.keyPrefix, deletion) });
      } catch (err) {
        report.malformed++;
        logger.error('malformed deletion announcement; left on the queue for the DLQ', { messageId: message.MessageId, receiveCount: message.Attributes?.ApproximateReceiveCount, ...errorFields(err) });
      }
    }
    if (new Set(pending.map((p) => p.key)).size >= BATCH_KEYS) await flush();
  }
  await flush();
  return { dryRun, ...report };
}
