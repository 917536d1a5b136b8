/**
 * The two queues: which variable names each, the one error for an unset URL, and the one place that sends
 * messages (announcements are validated against their schema before they leave). SQS failures become
 * StorageError like S3's.
 */
import { SendMessageCommand, SQSServiceException, type SQSClient } from '@aws-sdk/client-sqs';
import type { z } from 'zod';
import type { Config } from './config.ts';
import { ConfigError, StorageError } from './errors.ts';
import { parseWith } from './messages.ts';

export type QueueName = 'segments' | 'deletions';

const QUEUES: Readonly<Record<QueueName, { readonly variable: string; readonly field: 'segmentsQueueUrl' | 'deletionsQueueUrl'; readonly use: string }>> = {
  segments: { variable: 'S3_STORAGE_SEGMENTS_QUEUE_URL', field: 'segmentsQueueUrl', use: 'segment announcements are sent to it and serve polls it' },
  deletions: { variable: 'S3_STORAGE_DELETIONS_QUEUE_URL', field: 'deletionsQueueUrl', use: 'deletion announcements are sent to it and cleanup drains it' },
};

/** The URL of queue `name`, or a ConfigError naming its variable. */
export function requireQueueUrl(config: Pick<Config, 'segmentsQueueUrl' | 'deletionsQueueUrl'>, name: QueueName): string {
  const queue = QUEUES[name];
  const url = config[queue.field];
  if (url === undefined) throw new ConfigError(queue.variable, `${queue.variable} is not set; ${queue.use}`);
  return url;
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Wraps an SQS failure in a StorageError naming the operation and the queue. */
export function queueError(operation: string, queueUrl: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const status = err instanceof SQSServiceException ? err.$metadata.httpStatusCode : undefined;
  const name = err instanceof Error ? err.name : 'Error';
  const retryable = status === undefined ? !(err instanceof SQSServiceException) : RETRYABLE_STATUS.has(status);
  const message = err instanceof Error ? err.message : String(err);
  return new StorageError(operation, queueUrl, undefined, `${operation} ${queueUrl} failed: ${name}${status ? ` ${status}` : ''}: ${message}`, { cause: err, retryable, httpStatus: status });
}

export interface SendRequest<T> {
  readonly queue: QueueName;
  readonly schema: z.ZodType<T>;
  readonly message: unknown;
  /** Names the message in errors ("segment announcement"). */
  readonly what: string;
}

/** Validates the message and sends it as JSON to its queue; resolves to the SQS message id. */
export async function sendMessage<T>(sqs: SQSClient, config: Pick<Config, 'segmentsQueueUrl' | 'deletionsQueueUrl'>, request: SendRequest<T>): Promise<string> {
  const queueUrl = requireQueueUrl(config, request.queue);
  const body = parseWith(request.schema, request.message, request.what);
  try {
    const out = await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }));
    return out.MessageId ?? '';
  } catch (err) {
    throw queueError('SendMessage', queueUrl, err);
  }
}
