/**
 * `bucket-storage serve`: runs the upload function locally the way Lambda's SQS event source mapping does:
 * long-polls the segments queue, hands batches (batch size ≤ 10) to the same handler, deletes the records
 * that succeeded and leaves the failed ones (batchItemFailures) to come back after their visibility timeout;
 * the queue's redrive policy moves a record to the DLQ after maxReceiveCount receives. `retryDelaySeconds`
 * shortens the wait before a failed record is seen again (Lambda waits the whole visibility timeout).
 * Optional extra jobs (e.g. cleanup) run on a timer between polls.
 */
import { ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { errorFields, logger } from '../core/logger.ts';
import { lambdaContext } from './lambdaContext.ts';
import { sqsRecord } from './lambdaEvents.ts';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

export interface ServeOptions {
  readonly sqs: SQSClient;
  readonly queueUrl: string;
  readonly handler: SqsHandler;
  readonly region: string;
  readonly batchSize?: number;
  readonly waitTimeSeconds?: number;
  readonly retryDelaySeconds?: number;
  /** Resolves when this signal aborts (SIGTERM/SIGINT); the batch in hand is finished first. */
  readonly signal?: AbortSignal;
  /** Stop after this many consecutive empty polls (demo and tests); run forever when unset. */
  readonly stopWhenIdleFor?: number;
  /** Called after each batch with its outcome. */
  readonly onBatch?: (received: number, failed: number) => void;
  /** Jobs run every `everyMs` between polls (e.g. the cleanup function). */
  readonly timers?: readonly { readonly everyMs: number; run(): Promise<void> }[];
}

/** How long serve waits after a failed SQS request (after the SDK's own retries) before it polls again. */
const SQS_FAILURE_PAUSE_MS = 1_000;

/**
 * Polls until the signal aborts or the queue stays idle; returns the count of records handled. A failed SQS
 * request never stops it: a failed receive is retried after a pause; a failed delete leaves the records to come
 * back after their visibility timeout (a duplicate delivery, which the upload acknowledges as already stored);
 * a failed visibility change only delays a retry. Timers (cleanup) that fail are logged and run again later.
 */
export async function serveQueue(options: ServeOptions): Promise<{ received: number; failed: number }> {
  const totals = { received: 0, failed: 0 };
  const lastRun = new Map<number, number>();
  let idle = 0;
  while (!options.signal?.aborted) {
    await runDueTimers(options, lastRun);
    const messages = await receive(options);
    if (messages === undefined) continue;
    if (messages.length === 0) {
      if (options.stopWhenIdleFor !== undefined && ++idle >= options.stopWhenIdleFor) break;
      continue;
    }
    idle = 0;
    const event: SQSEvent = { Records: messages.map((m) => sqsRecord({ messageId: m.MessageId ?? '', body: m.Body ?? '', receiptHandle: m.ReceiptHandle, attributes: m.Attributes, md5OfBody: m.MD5OfBody }, options.queueUrl, options.region)) };
    const answer = await options.handler(event, lambdaContext('upload'));
    const failedIds = new Set(answer.batchItemFailures.map((f) => f.itemIdentifier));
    const failed = event.Records.filter((r) => failedIds.has(r.messageId));
    await settle(options, event.Records.filter((r) => !failedIds.has(r.messageId)), failed);
    totals.received += messages.length;
    totals.failed += failed.length;
    options.onBatch?.(messages.length, failed.length);
  }
  return totals;
}

async function runDueTimers(options: ServeOptions, lastRun: Map<number, number>): Promise<void> {
  for (const [i, timer] of (options.timers ?? []).entries()) {
    if (Date.now() - (lastRun.get(i) ?? 0) < timer.everyMs) continue;
    lastRun.set(i, Date.now());
    await timer.run().catch((err: unknown) => logger.error('serve: a timer job failed; it runs again at its next turn', errorFields(err)));
  }
}

/** One long poll; undefined when it failed (after a pause) or serve is stopping. */
async function receive(options: ServeOptions): Promise<Message[] | undefined> {
  try {
    const out = await options.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: options.queueUrl, MaxNumberOfMessages: options.batchSize ?? 10, WaitTimeSeconds: options.waitTimeSeconds ?? 1, MessageSystemAttributeNames: ['All'] }),
      options.signal ? { abortSignal: options.signal } : {},
    );
    return out.Messages ?? [];
  } catch (err) {
    if (options.signal?.aborted) return undefined;
    logger.error('serve: ReceiveMessage failed; polling again shortly', errorFields(err));
    await new Promise((resolve) => setTimeout(resolve, SQS_FAILURE_PAUSE_MS));
    return undefined;
  }
}

/** Deletes the records that succeeded; makes the failed ones visible again after the retry delay. */
async function settle(options: ServeOptions, done: readonly SQSRecord[], failed: readonly SQSRecord[]): Promise<void> {
  if (done.length > 0) {
    try {
      const out = await options.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: options.queueUrl, Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })) }));
      if ((out.Failed ?? []).length > 0) logger.warn('serve: SQS kept some processed records; they come back and are acknowledged as already stored', { failed: out.Failed?.length });
    } catch (err) {
      logger.warn('serve: DeleteMessageBatch failed; the records come back and are acknowledged as already stored', errorFields(err));
    }
  }
  if (failed.length === 0 || options.retryDelaySeconds === undefined) return;
  const entries = failed.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle, VisibilityTimeout: options.retryDelaySeconds }));
  await options.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: options.queueUrl, Entries: entries })).catch((err: unknown) => {
    logger.warn('serve: ChangeMessageVisibilityBatch failed; the failed records come back after their visibility timeout instead', errorFields(err));
  });
}
