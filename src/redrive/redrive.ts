/**
 * Moves the messages of a queue's dead-letter queue back to the queue (after the cause was fixed, or to replay
 * what a fast failure sent there). SQS's own message move task where the server has it (AWS); otherwise
 * receive → SendMessageBatch to the queue → DeleteMessageBatch, which local servers (fauxqs, moto) support.
 * Both stop by themselves: the task when SQS reports it finished (or `timeoutMs`), the copy loop after as many
 * messages as the DLQ held when it started (visible or in flight), or two empty receives in a row.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ListMessageMoveTasksCommand,
  ReceiveMessageCommand,
  SQSServiceException,
  StartMessageMoveTaskCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { queueAttributes, queueError, sendBatch, type QueueWithDeadLetter } from '../core/queues.ts';
import { DEAD_LETTER_ATTRIBUTES } from '../upload/deadLetter.ts';

export interface RedriveReport {
  readonly method: 'message-move-task' | 'receive-and-send';
  readonly moved: number;
  /** Messages left in the DLQ because the queue refused them (receive-and-send only). */
  readonly failed: number;
}

export interface RedriveOptions {
  readonly timeoutMs?: number;
  readonly pollMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Messages in a queue, visible or in flight (received by someone, e.g. a --dry-run), as SQS approximates it. */
export async function depth(sqs: SQSClient, url: string): Promise<number> {
  const a = await queueAttributes(sqs, url, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible']);
  return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0);
}

/** The server does not know the message move task (fauxqs: InvalidAction; moto: not implemented). */
function unsupported(err: unknown): boolean {
  if (!(err instanceof SQSServiceException)) return false;
  const status = err.$metadata.httpStatusCode ?? 0;
  return /InvalidAction|UnsupportedOperation|UnknownOperation|NotImplemented/i.test(err.name) || status === 501 || (status === 400 && /unknown action|not (yet )?implemented|not supported/i.test(err.message));
}

/** Moves every message of `queue`'s DLQ back to `queue`. */
export async function redrive(sqs: SQSClient, queue: QueueWithDeadLetter, options: RedriveOptions = {}): Promise<RedriveReport> {
  try {
    await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: queue.deadLetter.arn, DestinationArn: queue.arn }));
  } catch (err) {
    if (unsupported(err)) return receiveAndSend(sqs, queue);
    throw queueError('StartMessageMoveTask', queue.deadLetter.url, err);
  }
  return awaitMoveTask(sqs, queue, options);
}

async function awaitMoveTask(sqs: SQSClient, queue: QueueWithDeadLetter, options: RedriveOptions): Promise<RedriveReport> {
  const sleep = options.sleep ?? defaultSleep;
  const deadline = Date.now() + (options.timeoutMs ?? 15 * 60_000);
  for (;;) {
    let task;
    try {
      task = (await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: queue.deadLetter.arn, MaxResults: 1 }))).Results?.[0];
    } catch (err) {
      throw queueError('ListMessageMoveTasks', queue.deadLetter.url, err);
    }
    const moved = task?.ApproximateNumberOfMessagesMoved ?? 0;
    if (task?.Status === 'COMPLETED') return { method: 'message-move-task', moved, failed: 0 };
    if (task?.Status === 'FAILED' || task?.Status === 'CANCELLED') {
      throw queueError('StartMessageMoveTask', queue.deadLetter.url, new Error(`the message move task ended ${task.Status} after ${moved} messages: ${task.FailureReason ?? 'no reason given'}`));
    }
    if (Date.now() >= deadline) throw queueError('ListMessageMoveTasks', queue.deadLetter.url, new Error(`the message move task is still ${task?.Status ?? 'unknown'} after ${moved} messages; it goes on in SQS, check again with bucket-storage redrive --dry-run`));
    await sleep(options.pollMs ?? 2_000);
  }
}

/** The message's own attributes, without those the dead-lettering added. */
function ownAttributes(m: Message): Record<string, MessageAttributeValue> | undefined {
  const marks = new Set<string>(Object.values(DEAD_LETTER_ATTRIBUTES));
  const own = Object.entries(m.MessageAttributes ?? {}).filter(([name]) => !marks.has(name));
  return own.length === 0 ? undefined : Object.fromEntries(own);
}

async function receiveAndSend(sqs: SQSClient, queue: QueueWithDeadLetter): Promise<RedriveReport> {
  const dlq = queue.deadLetter.url;
  const target = await depth(sqs, dlq);
  let moved = 0;
  let failed = 0;
  let empty = 0;
  while (moved + failed < target && empty < 2) {
    let messages: Message[];
    try {
      messages = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq, MaxNumberOfMessages: Math.min(10, target - moved - failed), WaitTimeSeconds: 1, VisibilityTimeout: 120, MessageAttributeNames: ['All'] }))).Messages ?? [];
    } catch (err) {
      throw queueError('ReceiveMessage', dlq, err);
    }
    empty = messages.length === 0 ? empty + 1 : 0;
    if (messages.length === 0) continue;
    const refused = await sendBatch(sqs, queue.url, messages.map((m, i) => ({ id: `m${i}`, body: m.Body ?? '', attributes: ownAttributes(m) })));
    const sent = messages.filter((_, i) => !refused.has(`m${i}`));
    const kept = messages.filter((_, i) => refused.has(`m${i}`));
    try {
      if (sent.length > 0) await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: dlq, Entries: sent.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })) }));
      // Refused ones are visible in the DLQ again at once, for the next run.
      if (kept.length > 0) await sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: dlq, Entries: kept.map((m, i) => ({ Id: `v${i}`, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })) }));
    } catch (err) {
      throw queueError('DeleteMessageBatch', dlq, err);
    }
    moved += sent.length;
    failed += kept.length;
  }
  return { method: 'receive-and-send', moved, failed };
}

export interface DeadLetterSample {
  readonly messageId: string;
  readonly error: string | undefined;
  readonly reason: string | undefined;
  readonly body: string;
}

/** Up to 10 messages of the DLQ, left in place (visible again at once), for triage. */
export async function peek(sqs: SQSClient, queue: QueueWithDeadLetter): Promise<DeadLetterSample[]> {
  let messages: Message[];
  try {
    messages = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.deadLetter.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 0, MessageAttributeNames: ['All'] }))).Messages ?? [];
  } catch (err) {
    throw queueError('ReceiveMessage', queue.deadLetter.url, err);
  }
  const text = (m: Message, name: string) => m.MessageAttributes?.[name]?.StringValue;
  return messages.map((m) => ({ messageId: m.MessageId ?? '', error: text(m, DEAD_LETTER_ATTRIBUTES.error), reason: text(m, DEAD_LETTER_ATTRIBUTES.reason), body: (m.Body ?? '').slice(0, 300) }));
}
