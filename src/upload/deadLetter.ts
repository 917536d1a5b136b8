/**
 * Fast failure for records that can never succeed. A record whose announcement is malformed, names a refused
 * identifier or location, or whose source is missing or disagrees with the announced size or SHA-256 would
 * fail the same way on every one of the queue's `maxReceiveCount` receives (hours, with the stack's
 * visibility timeout). The upload function sends such a record to the segments queue's dead-letter queue
 * (S3_STORAGE_SEGMENTS_DLQ_URL) at once, body unchanged, with why as message attributes, and reports it
 * successful so SQS deletes it. Everything else (throttling, network, access, configuration, registry) stays
 * failed and keeps the queue's redrive. Without S3_STORAGE_SEGMENTS_DLQ_URL, nothing changes.
 */
import type { MessageAttributeValue, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSRecord } from 'aws-lambda';
import type { Config } from '../core/config.ts';
import { BucketStorageError, IntegrityError, InvalidIdentifierError, InvalidMessageError, LocationError, PathOutsideRootError } from '../core/errors.ts';
import { errorFields, logger } from '../core/logger.ts';
import { sendBatch, type BatchEntry } from '../core/queues.ts';

/** The message attributes a dead-lettered record carries (redrive removes them again). */
export const DEAD_LETTER_ATTRIBUTES = { error: 'bks-error', reason: 'bks-reason', sourceQueue: 'bks-source-queue', receiveCount: 'bks-receive-count' } as const;
const MAX_REASON = 1000;
/** SQS allows 10 message attributes; ours take 4, the record's own keep the rest. */
const MAX_ATTRIBUTES = 10;

/**
 * The error's one-line reason when it says the record itself can never succeed, undefined when a redelivery
 * might (or the deployment may be fixed under it): a missing or unreadable S3_STORAGE_SOURCE_ROOT, or none set,
 * is the deployment's fault, not the record's.
 */
export function poisonReason(err: unknown, config: Pick<Config, 'sourceRoot'>): string | undefined {
  if (!(err instanceof BucketStorageError) || err.retryable) return undefined;
  const poison =
    err instanceof InvalidMessageError ||
    err instanceof InvalidIdentifierError ||
    err instanceof IntegrityError ||
    (err instanceof PathOutsideRootError && err.root !== undefined) ||
    (err instanceof LocationError && err.location !== config.sourceRoot);
  if (!poison) return undefined;
  const line = `${err.name}: ${err.message}`.replace(/\s+/g, ' ');
  return line.length <= MAX_REASON ? line : `${line.slice(0, MAX_REASON - 1)}…`;
}

export interface FailedRecord {
  readonly record: SQSRecord;
  readonly error: unknown;
}

export interface DeadLetterQueue {
  readonly sqs: SQSClient;
  readonly url: string;
}

function attributesOf(record: SQSRecord, error: unknown, reason: string): Record<string, MessageAttributeValue> {
  const str = (value: string): MessageAttributeValue => ({ DataType: 'String', StringValue: value });
  const own: [string, MessageAttributeValue][] = Object.entries(record.messageAttributes ?? {})
    .filter(([name]) => !name.startsWith('bks-'))
    .flatMap(([name, a]): [string, MessageAttributeValue][] =>
      a.stringValue !== undefined ? [[name, { DataType: a.dataType, StringValue: a.stringValue }]] : a.binaryValue !== undefined ? [[name, { DataType: a.dataType, BinaryValue: Buffer.from(a.binaryValue, 'base64') }]] : [],
    )
    .slice(0, MAX_ATTRIBUTES - 4);
  return {
    ...Object.fromEntries(own),
    [DEAD_LETTER_ATTRIBUTES.error]: str(error instanceof Error ? error.name : 'Error'),
    [DEAD_LETTER_ATTRIBUTES.reason]: str(reason),
    [DEAD_LETTER_ATTRIBUTES.sourceQueue]: str(record.eventSourceARN),
    [DEAD_LETTER_ATTRIBUTES.receiveCount]: { DataType: 'Number', StringValue: record.attributes.ApproximateReceiveCount || '1' },
  };
}

/**
 * Sends the poison records among `failed` to the dead-letter queue and returns `answer` without them; a record
 * the DLQ did not take stays failed (the queue's redrive then applies), so no record is ever lost.
 */
export async function deadLetterPoison(answer: SQSBatchResponse, failed: readonly FailedRecord[], config: Pick<Config, 'sourceRoot'>, dlq: DeadLetterQueue): Promise<SQSBatchResponse> {
  const poison = failed.flatMap(({ record, error }) => {
    const reason = poisonReason(error, config);
    return reason === undefined ? [] : [{ record, error, reason }];
  });
  if (poison.length === 0) return answer;
  const entries: BatchEntry[] = poison.map((p, i) => ({ id: `r${i}`, body: p.record.body, attributes: attributesOf(p.record, p.error, p.reason) }));
  let refused: Map<string, string>;
  try {
    refused = await sendBatch(dlq.sqs, dlq.url, entries);
  } catch (err) {
    logger.error('poison records could not be sent to the dead-letter queue; they stay failed', { deadLetterQueue: dlq.url, ...errorFields(err) });
    return answer;
  }
  const sent = new Set<string>();
  for (const [i, p] of poison.entries()) {
    const why = refused.get(`r${i}`);
    if (why === undefined) {
      sent.add(p.record.messageId);
      logger.error('record can never succeed: sent to the dead-letter queue at once', { messageId: p.record.messageId, reason: p.reason, deadLetterQueue: dlq.url });
    } else {
      logger.error('the dead-letter queue refused a poison record; it stays failed', { messageId: p.record.messageId, refusal: why });
    }
  }
  return { batchItemFailures: answer.batchItemFailures.filter((f) => !sent.has(f.itemIdentifier)) };
}
