/**
 * The two queues: which variable names each, the one error for an unset URL, and the one place that sends
 * messages (announcements are validated against their schema before they leave; batches of up to 10), plus
 * where a queue's dead-letter queue is. SQS failures become StorageError like S3's.
 */
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSServiceException,
  type MessageAttributeValue,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import * as zod from 'zod';
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
  readonly schema: zod.ZodType<T>;
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

/** One message of a batch: its id within the batch (unique, [A-Za-z0-9_-]{1,80}), body and attributes. */
export interface BatchEntry {
  readonly id: string;
  readonly body: string;
  readonly attributes?: Readonly<Record<string, MessageAttributeValue>>;
}

/** SQS's limits on one SendMessageBatch: 10 entries, 256 KiB of bodies in all. */
const MAX_BATCH_ENTRIES = 10;
const MAX_BATCH_BYTES = 256 * 1024;

/** Splits entries into SendMessageBatch requests within SQS's limits (a single entry may fill one alone). */
function chunks(entries: readonly BatchEntry[]): BatchEntry[][] {
  const out: BatchEntry[][] = [];
  let current: BatchEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = Buffer.byteLength(entry.body);
    if (current.length === MAX_BATCH_ENTRIES || (current.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Sends opaque messages (bodies as they are) with SendMessageBatch, as few requests as SQS's limits allow.
 * Resolves to the entries SQS refused, id → reason (empty when all were sent); a request that fails as a whole
 * is a StorageError.
 */
export async function sendBatch(sqs: SQSClient, queueUrl: string, entries: readonly BatchEntry[]): Promise<Map<string, string>> {
  const refused = new Map<string, string>();
  for (const chunk of chunks(entries)) {
    let out;
    try {
      out = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((e) => ({ Id: e.id, MessageBody: e.body, ...(e.attributes ? { MessageAttributes: { ...e.attributes } } : {}) })),
        }),
      );
    } catch (err) {
      throw queueError('SendMessageBatch', queueUrl, err);
    }
    for (const f of out.Failed ?? []) refused.set(f.Id ?? '?', `${f.Code ?? 'Error'}: ${f.Message ?? ''}`);
    // An entry SQS neither confirms nor refuses is not sent.
    const answered = new Set([...(out.Successful ?? []).map((x) => x.Id), ...(out.Failed ?? []).map((x) => x.Id)]);
    for (const e of chunk) if (!answered.has(e.id)) refused.set(e.id, 'not confirmed by SQS');
  }
  return refused;
}

export interface BatchRequest<T> extends Omit<SendRequest<T>, 'message'> {
  /** The messages, by batch entry id. */
  readonly messages: ReadonlyMap<string, unknown>;
}

/** Validates every message (InvalidMessageError on the first bad one, nothing sent) and sends them in batches. */
export async function sendMessages<T>(sqs: SQSClient, config: Pick<Config, 'segmentsQueueUrl' | 'deletionsQueueUrl'>, request: BatchRequest<T>): Promise<Map<string, string>> {
  const queueUrl = requireQueueUrl(config, request.queue);
  const entries = [...request.messages].map(([id, message]) => ({ id, body: JSON.stringify(parseWith(request.schema, message, request.what)) }));
  return sendBatch(sqs, queueUrl, entries);
}

/** A queue's attributes; StorageError naming the queue when SQS refuses. */
export async function queueAttributes(sqs: SQSClient, url: string, names: QueueAttributeName[]): Promise<Record<string, string>> {
  try {
    return (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }))).Attributes ?? {};
  } catch (err) {
    throw queueError('GetQueueAttributes', url, err);
  }
}

/** A queue's RedrivePolicy attribute, as SQS writes it. */
const redrivePolicySchema = zod.object({ deadLetterTargetArn: zod.string().optional(), maxReceiveCount: zod.union([zod.string(), zod.number()]).optional() });

export interface QueueWithDeadLetter {
  readonly url: string;
  readonly arn: string;
  readonly deadLetter: { readonly url: string; readonly arn: string };
  readonly maxReceiveCount: number | undefined;
}

/** The queue at `url` with its dead-letter queue (from its RedrivePolicy); a ConfigError when it has none. */
export async function withDeadLetterQueue(sqs: SQSClient, url: string, variable: string): Promise<QueueWithDeadLetter> {
  const attributes = await queueAttributes(sqs, url, ['QueueArn', 'RedrivePolicy']);
  let policy: zod.infer<typeof redrivePolicySchema> = {};
  try {
    policy = attributes.RedrivePolicy ? redrivePolicySchema.parse(JSON.parse(attributes.RedrivePolicy)) : {};
  } catch (err) {
    throw new ConfigError(variable, `${url} has a RedrivePolicy that is not JSON naming a deadLetterTargetArn`, { cause: err });
  }
  const dlqArn = policy.deadLetterTargetArn;
  if (dlqArn === undefined || attributes.QueueArn === undefined) throw new ConfigError(variable, `${url} (${variable}) has no dead-letter queue (no RedrivePolicy): nothing to redrive`);
  // arn:aws:sqs:<region>:<account>:<name>
  const [, , , , account, name] = dlqArn.split(':');
  let dlqUrl: string | undefined;
  try {
    dlqUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: name, ...(account ? { QueueOwnerAWSAccountId: account } : {}) }))).QueueUrl;
  } catch (err) {
    throw queueError('GetQueueUrl', dlqArn, err);
  }
  if (dlqUrl === undefined) throw queueError('GetQueueUrl', dlqArn, new Error('no QueueUrl in the answer'));
  const count = policy.maxReceiveCount === undefined ? undefined : Number(policy.maxReceiveCount);
  return { url, arn: attributes.QueueArn, deadLetter: { url: dlqUrl, arn: dlqArn }, maxReceiveCount: count };
}
