/**
 * `redrive` and `redrive --dry-run` (src/redrive/redrive.ts) against a fake SQS client: when the message move
 * task is used and when the copy loop takes over, how the task is awaited (finished, failed, timed out), and
 * what the copy loop sends, deletes, gives back and counts. The integration test (test/deadLetter.test.ts)
 * runs the CLI in a child process, out of the mutation run's reach: written for the survivors of the run
 * `tools2` (docs/MUTATION.md).
 */
import { SQSServiceException, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StorageError } from '../src/core/errors.ts';
import { depth, peek, redrive } from '../src/redrive/redrive.ts';
import { DEAD_LETTER_ATTRIBUTES } from '../src/upload/deadLetter.ts';

const QUEUE = {
  url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments',
  arn: 'arn:aws:sqs:eu-west-1:123456789012:segments',
  deadLetter: { url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments-dlq', arn: 'arn:aws:sqs:eu-west-1:123456789012:segments-dlq' },
  maxReceiveCount: 3,
};

type Input = Record<string, unknown>;
type Handler = (input: Input) => unknown;

/** An SQS client answering each command by its name with `handlers` (an Error is thrown); it records every call. */
function fakeSqs(handlers: Record<string, Handler>) {
  const calls: { name: string; input: Input }[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: Input }) {
      const name = command.constructor.name.replace(/Command$/, '');
      calls.push({ name, input: command.input });
      const handler = handlers[name];
      if (handler === undefined) throw new Error(`unexpected ${name}`);
      const out = handler(command.input);
      if (out instanceof Error) throw out;
      return out;
    },
  };
  return { sqs: client as unknown as SQSClient, calls, named: (name: string) => calls.filter((c) => c.name === name).map((c) => c.input) };
}

function sqsError(name: string, status: number, message: string): SQSServiceException {
  return new SQSServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message });
}

const attribute = (value: string) => ({ DataType: 'String', StringValue: value });

/** A dead-letter queue holding `messages`: receive hands out visible ones, delete removes, a visibility of 0 gives back. */
function deadLetterQueue(messages: Message[], refuse: (body: string) => boolean = () => false, extra: Record<string, Handler> = {}) {
  const visible = [...messages];
  const inFlight = new Map<string, Message>();
  const fake = fakeSqs({
    StartMessageMoveTask: () => sqsError('InvalidAction', 400, 'The action StartMessageMoveTask is not valid for this endpoint.'),
    GetQueueAttributes: () => ({ Attributes: { ApproximateNumberOfMessages: String(visible.length), ApproximateNumberOfMessagesNotVisible: String(inFlight.size) } }),
    ReceiveMessage: (input) => {
      const max = Number(input.MaxNumberOfMessages);
      if (!(max >= 1 && max <= 10)) return sqsError('InvalidParameterValue', 400, `MaxNumberOfMessages ${max} is not 1 to 10`); // as SQS
      const taken = visible.splice(0, max);
      for (const m of taken) inFlight.set(m.ReceiptHandle ?? '', m);
      return { Messages: taken };
    },
    SendMessageBatch: (input) => {
      const entries = input.Entries as { Id: string; MessageBody: string }[];
      if (entries.length === 0) return sqsError('AWS.SimpleQueueService.EmptyBatchRequest', 400, 'There should be at least one entry'); // as SQS
      return {
        Successful: entries.filter((e) => !refuse(e.MessageBody)).map((e) => ({ Id: e.Id })),
        Failed: entries.filter((e) => refuse(e.MessageBody)).map((e) => ({ Id: e.Id, Code: 'InvalidParameterValue', SenderFault: true })),
      };
    },
    DeleteMessageBatch: (input) => {
      for (const e of input.Entries as { ReceiptHandle: string }[]) inFlight.delete(e.ReceiptHandle);
      return {};
    },
    ChangeMessageVisibilityBatch: (input) => {
      for (const e of input.Entries as { ReceiptHandle: string }[]) {
        const m = inFlight.get(e.ReceiptHandle);
        inFlight.delete(e.ReceiptHandle);
        if (m) visible.push(m);
      }
      return {};
    },
    ...extra,
  });
  return { ...fake, visible, inFlight };
}

const message = (i: number, attributes: Message['MessageAttributes'] = undefined): Message => ({ MessageId: `id-${i}`, ReceiptHandle: `rh-${i}`, Body: `{"segment":${i}}`, MessageAttributes: attributes });

afterEach(() => vi.restoreAllMocks());

describe('depth', () => {
  it('counts the visible messages and those in flight', async () => {
    const { sqs, named } = fakeSqs({ GetQueueAttributes: () => ({ Attributes: { ApproximateNumberOfMessages: '3', ApproximateNumberOfMessagesNotVisible: '4' } }) });
    expect(await depth(sqs, QUEUE.url)).toBe(7);
    expect(named('GetQueueAttributes')).toEqual([{ QueueUrl: QUEUE.url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }]);
    const none = fakeSqs({ GetQueueAttributes: () => ({ Attributes: { ApproximateNumberOfMessagesNotVisible: '2' } }) });
    expect(await depth(none.sqs, QUEUE.url)).toBe(2);
  });
});

describe('redrive through the message move task', () => {
  const task = (...answers: object[]) => {
    let n = 0;
    return fakeSqs({
      StartMessageMoveTask: () => ({ TaskHandle: 'h' }),
      ListMessageMoveTasks: () => ({ Results: [answers[Math.min(n++, answers.length - 1)]].filter((a) => a !== undefined && Object.keys(a).length > 0) }),
    });
  };

  it('polls, every pollMs, until SQS reports it completed, with the default deadline', async () => {
    const fake = task({ Status: 'RUNNING', ApproximateNumberOfMessagesMoved: 4 }, { Status: 'RUNNING' }, { Status: 'COMPLETED', ApproximateNumberOfMessagesMoved: 12 });
    const slept: number[] = [];
    expect(await redrive(fake.sqs, QUEUE, { pollMs: 5, sleep: async (ms) => void slept.push(ms) })).toEqual({ method: 'message-move-task', moved: 12, failed: 0 });
    expect(slept).toEqual([5, 5]);
    expect(fake.named('StartMessageMoveTask')).toEqual([{ SourceArn: QUEUE.deadLetter.arn, DestinationArn: QUEUE.arn }]);
    expect(fake.named('ListMessageMoveTasks')).toEqual(Array(3).fill({ SourceArn: QUEUE.deadLetter.arn, MaxResults: 1 }));
  });

  it('fails when the task failed or was cancelled, with its status, count and reason', async () => {
    const failed = task({ Status: 'FAILED', ApproximateNumberOfMessagesMoved: 3, FailureReason: 'AccessDenied on the destination' });
    await expect(redrive(failed.sqs, QUEUE, { sleep: async () => undefined })).rejects.toThrow(
      `StartMessageMoveTask ${QUEUE.deadLetter.url} failed: Error: the message move task ended FAILED after 3 messages: AccessDenied on the destination`,
    );
    const cancelled = task({ Status: 'CANCELLED' });
    await expect(redrive(cancelled.sqs, QUEUE, { sleep: async () => undefined })).rejects.toThrow('the message move task ended CANCELLED after 0 messages: no reason given');
  });

  it('gives up at its deadline, saying the task goes on and how to check it', async () => {
    vi.spyOn(Date, 'now').mockReturnValue(1_000_000); // the clock stands still: only a deadline already reached ends the wait
    const sleep = vi.fn(async () => {
      throw new Error('slept past the deadline');
    });
    const running = task({ Status: 'RUNNING', ApproximateNumberOfMessagesMoved: 2 });
    await expect(redrive(running.sqs, QUEUE, { timeoutMs: 0, sleep })).rejects.toThrow(
      `ListMessageMoveTasks ${QUEUE.deadLetter.url} failed: Error: the message move task is still RUNNING after 2 messages; it goes on in SQS, check again with bucket-storage redrive --dry-run`,
    );
    expect(sleep).not.toHaveBeenCalled();
    const unknown = task({});
    await expect(redrive(unknown.sqs, QUEUE, { timeoutMs: 0, sleep })).rejects.toThrow('the message move task is still unknown after 0 messages');
  });

  it('reports a failed listing as a queue error of ListMessageMoveTasks', async () => {
    const fake = fakeSqs({ StartMessageMoveTask: () => ({}), ListMessageMoveTasks: () => sqsError('AccessDenied', 403, 'no') });
    const err = await redrive(fake.sqs, QUEUE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(`ListMessageMoveTasks ${QUEUE.deadLetter.url} failed: AccessDenied 403: no`);
  });
});

describe('which refusals of the task mean "not supported here"', () => {
  const start = (err: Error) => deadLetterQueue([message(1)], () => false, { StartMessageMoveTask: () => err });

  it.each([
    ['fauxqs: InvalidAction', sqsError('InvalidAction', 400, 'x')],
    ['an UnsupportedOperation', sqsError('UnsupportedOperation', 400, 'x')],
    ['a NotImplemented', sqsError('NotImplemented', 500, 'x')],
    ['any 501', sqsError('Whatever', 501, 'x')],
    ['moto: a 400 saying not yet implemented', sqsError('Whatever', 400, 'The action StartMessageMoveTask is not yet implemented')],
    ['a 400 saying not implemented', sqsError('Whatever', 400, 'not implemented')],
    ['a 400 saying unknown action', sqsError('Whatever', 400, 'Unknown Action')],
    ['a 400 saying not supported', sqsError('Whatever', 400, 'operation not supported')],
  ])('%s: the copy loop moves the messages', async (_, err) => {
    const fake = start(err);
    expect(await redrive(fake.sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 1, failed: 0 });
  });

  it.each([
    ['a 400 saying something else', sqsError('Whatever', 400, 'queue is busy'), 'StartMessageMoveTask'],
    ['a 403 saying not supported', sqsError('AccessDenied', 403, 'not supported for this role'), 'AccessDenied 403'],
    ['a 500', sqsError('InternalError', 500, 'x'), 'InternalError 500'],
    ['an error of the network', new Error('socket hang up'), 'socket hang up'],
  ])('%s: redrive fails with it', async (_, err, text) => {
    const fake = start(err);
    await expect(redrive(fake.sqs, QUEUE)).rejects.toThrow(text);
    expect(fake.named('ReceiveMessage')).toEqual([]);
  });
});

describe('redrive by receive, send and delete', () => {
  it('moves as many messages as the DLQ held, ten per receive, each sent with its own attributes only', async () => {
    const marks = Object.fromEntries(Object.values(DEAD_LETTER_ATTRIBUTES).map((name) => [name, attribute('x')]));
    const messages = Array.from({ length: 12 }, (_, i) => message(i, i === 0 ? { ...marks, trace: attribute('t-0') } : i === 1 ? marks : undefined));
    const fake = deadLetterQueue(messages);
    expect(await redrive(fake.sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 12, failed: 0 });
    expect(fake.named('ReceiveMessage').map((r) => r.MaxNumberOfMessages)).toEqual([10, 2]);
    expect(fake.named('ReceiveMessage')[0]).toEqual({ QueueUrl: QUEUE.deadLetter.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 120, MessageAttributeNames: ['All'] });
    const sent = fake.named('SendMessageBatch').flatMap((b) => b.Entries as { Id: string; MessageBody: string; MessageAttributes?: object }[]);
    expect(fake.named('SendMessageBatch').every((b) => b.QueueUrl === QUEUE.url)).toBe(true);
    expect(sent.map((e) => e.MessageBody)).toEqual(messages.map((m) => m.Body));
    expect(sent[0]?.MessageAttributes).toEqual({ trace: attribute('t-0') });
    expect(sent[1]).not.toHaveProperty('MessageAttributes');
    expect(sent[2]).not.toHaveProperty('MessageAttributes');
    expect(fake.visible.length + fake.inFlight.size).toBe(0);
  });

  it('stops at the count the DLQ held when it started, leaving later arrivals', async () => {
    const fake = deadLetterQueue([message(1), message(2), message(3)]);
    const receive = fake.calls;
    const sqs = {
      async send(command: { constructor: { name: string }; input: Input }) {
        const out = await fake.sqs.send(command as never);
        // Two more arrive once the count was taken.
        if (command.constructor.name === 'GetQueueAttributesCommand') fake.visible.push(message(4), message(5));
        return out;
      },
    } as unknown as SQSClient;
    expect(await redrive(sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 3, failed: 0 });
    expect(receive.filter((c) => c.name === 'ReceiveMessage').map((c) => c.input.MaxNumberOfMessages)).toEqual([3]);
    expect(fake.visible.map((m) => m.MessageId)).toEqual(['id-4', 'id-5']);
  });

  it('leaves a refused message in the DLQ, visible at once, counted as failed; deletes only those sent', async () => {
    const fake = deadLetterQueue([message(0), message(1), message(2)], (body) => body === '{"segment":1}');
    expect(await redrive(fake.sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 2, failed: 1 });
    expect(fake.named('DeleteMessageBatch')).toEqual([{ QueueUrl: QUEUE.deadLetter.url, Entries: [{ Id: 'd0', ReceiptHandle: 'rh-0' }, { Id: 'd1', ReceiptHandle: 'rh-2' }] }]);
    expect(fake.named('ChangeMessageVisibilityBatch')).toEqual([{ QueueUrl: QUEUE.deadLetter.url, Entries: [{ Id: 'v0', ReceiptHandle: 'rh-1', VisibilityTimeout: 0 }] }]);
    expect(fake.visible.map((m) => m.MessageId)).toEqual(['id-1']);
  });

  it('a refusal in a full batch: the next receive asks only for what is left of the count, not for the refused one again', async () => {
    const fake = deadLetterQueue(Array.from({ length: 12 }, (_, i) => message(i)), (body) => body === '{"segment":0}');
    expect(await redrive(fake.sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 11, failed: 1 });
    expect(fake.named('ReceiveMessage').map((r) => r.MaxNumberOfMessages)).toEqual([10, 2]);
    expect(fake.visible.map((m) => m.MessageId)).toEqual(['id-0']);
  });

  it('sends no delete when every message was refused, and no visibility change when none was', async () => {
    const refused = deadLetterQueue([message(0)], () => true);
    expect(await redrive(refused.sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 0, failed: 1 });
    expect(refused.named('DeleteMessageBatch')).toEqual([]);
    const accepted = deadLetterQueue([message(0)]);
    await redrive(accepted.sqs, QUEUE);
    expect(accepted.named('ChangeMessageVisibilityBatch')).toEqual([]);
  });

  it('stops after two empty receives in a row when the messages counted are not there (in flight elsewhere)', async () => {
    const fake = deadLetterQueue([]);
    fake.inFlight.set('rh-x', message(9)); // counted, but not receivable
    expect(await redrive(fake.sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 0, failed: 0 });
    expect(fake.named('ReceiveMessage')).toHaveLength(2);
    expect(fake.named('SendMessageBatch')).toEqual([]);
  });

  it('an empty receive between two full ones does not end the loop', async () => {
    const fake = deadLetterQueue([message(1), message(2)]);
    let receives = 0;
    const sqs = {
      async send(command: { constructor: { name: string }; input: Input }) {
        // The second receive finds nothing (messages still in transit); the third gets the rest.
        if (command.constructor.name === 'ReceiveMessageCommand' && ++receives === 2) return { Messages: [] };
        if (command.constructor.name === 'ReceiveMessageCommand' && receives === 1) return fake.sqs.send({ ...command, constructor: command.constructor, input: { ...command.input, MaxNumberOfMessages: 1 } } as never);
        return fake.sqs.send(command as never);
      },
    } as unknown as SQSClient;
    expect(await redrive(sqs, QUEUE)).toEqual({ method: 'receive-and-send', moved: 2, failed: 0 });
    expect(receives).toBe(3);
  });

  it('names the operation that failed: the receive, or the delete', async () => {
    const receive = deadLetterQueue([message(1)], () => false, { ReceiveMessage: () => sqsError('AccessDenied', 403, 'no receive') });
    await expect(redrive(receive.sqs, QUEUE)).rejects.toThrow(`ReceiveMessage ${QUEUE.deadLetter.url} failed: AccessDenied 403: no receive`);
    const del = deadLetterQueue([message(1)], () => false, { DeleteMessageBatch: () => sqsError('AccessDenied', 403, 'no delete') });
    await expect(redrive(del.sqs, QUEUE)).rejects.toThrow(`DeleteMessageBatch ${QUEUE.deadLetter.url} failed: AccessDenied 403: no delete`);
  });
});

describe('peek (redrive --dry-run)', () => {
  it('shows up to ten messages with their error and reason, the body cut at 300 characters, and leaves them visible', async () => {
    const long = 'x'.repeat(400);
    const fake = fakeSqs({
      ReceiveMessage: () => ({
        Messages: [
          { MessageId: 'a', Body: long, MessageAttributes: { [DEAD_LETTER_ATTRIBUTES.error]: attribute('InvalidMessageError'), [DEAD_LETTER_ATTRIBUTES.reason]: attribute('body: not JSON') } },
          { MessageId: 'b' },
          {},
        ],
      }),
    });
    expect(await peek(fake.sqs, QUEUE)).toEqual([
      { messageId: 'a', error: 'InvalidMessageError', reason: 'body: not JSON', body: 'x'.repeat(300) },
      { messageId: 'b', error: undefined, reason: undefined, body: '' },
      { messageId: '', error: undefined, reason: undefined, body: '' },
    ]);
    expect(fake.named('ReceiveMessage')).toEqual([{ QueueUrl: QUEUE.deadLetter.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 0, MessageAttributeNames: ['All'] }]);
  });

  it('reports a failed receive as a queue error naming the DLQ', async () => {
    const fake = fakeSqs({ ReceiveMessage: () => sqsError('AccessDenied', 403, 'no') });
    await expect(peek(fake.sqs, QUEUE)).rejects.toThrow(`ReceiveMessage ${QUEUE.deadLetter.url} failed: AccessDenied 403: no`);
  });
});
