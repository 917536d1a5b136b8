/**
 * `bucket-storage serve`: runs the upload function locally the way Lambda's SQS event source mapping does:
 * long-polls the segments queue, hands batches (batch size ≤ 10) to the same handler, deletes the records
 * that succeeded and leaves the failed ones (batchItemFailures) to come back after their visibility timeout;
 * the queue's redrive policy moves a record to the DLQ after maxReceiveCount receives. `retryDelaySeconds`
 * shortens the wait before a failed record is seen again (Lambda waits the whole visibility timeout).
 * Optional extra jobs (e.g. cleanup) run on a timer between polls.
 */
import { ChangeMessageVisibilityBatchCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
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

/** Polls until the signal aborts or the queue stays idle; returns the count of records handled. */
export async function serveQueue(options: ServeOptions): Promise<{ received: number; failed: number }> {
  const totals = { received: 0, failed: 0 };
  const lastRun = new Map<number, number>();
  let idle = 0;
  while (!options.signal?.aborted) {
    for (const [i, timer] of (options.timers ?? []).entries()) {
      if (Date.now() - (lastRun.get(i) ?? 0) >= timer.everyMs) {
        lastRun.set(i, Date.now());
        await timer.run();
      }
    }
    const out = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: options.batchSize ?? 10,
        WaitTimeSeconds: options.waitTimeSeconds ?? 1,
        MessageSystemAttributeNames: ['All'],
      }),
      options.signal ? { abortSignal: options.signal } : {},
    ).catch((err: unknown) => {
      if (options.signal?.aborted) return { Messages: [] };
      throw err;
    });
    const messages = out.Messages ?? [];
    if (messages.length === 0) {
      if (options.stopWhenIdleFor !== undefined && ++idle >= options.stopWhenIdleFor) break;
      continue;
    }
    idle = 0;
    const event: SQSEvent = { Records: messages.map((m) => sqsRecord({ messageId: m.MessageId ?? '', body: m.Body ?? '', receiptHandle: m.ReceiptHandle, attributes: m.Attributes, md5OfBody: m.MD5OfBody }, options.queueUrl, options.region)) };
    const answer = await options.handler(event, lambdaContext('upload'));
    const failedIds = new Set(answer.batchItemFailures.map((f) => f.itemIdentifier));
    const done = event.Records.filter((r) => !failedIds.has(r.messageId));
    const failed = event.Records.filter((r) => failedIds.has(r.messageId));
    if (done.length > 0) {
      await options.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: options.queueUrl, Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })) }));
    }
    if (failed.length > 0 && options.retryDelaySeconds !== undefined) {
      await options.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: options.queueUrl,
          Entries: failed.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle, VisibilityTimeout: options.retryDelaySeconds })),
        }),
      );
    }
    totals.received += messages.length;
    totals.failed += failed.length;
    options.onBatch?.(messages.length, failed.length);
  }
  return totals;
}
