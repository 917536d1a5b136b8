/**
 * The SQS access layer against a scripted client: how SendMessageBatch requests are cut (10 entries, 256 KiB of
 * bodies), which entries a partial failure reports and why, where a queue's dead-letter queue is found, and how
 * SQS failures become StorageError. Written for the survivors of the mutation run `s3core2` (docs/MUTATION.md).
 */
import { SQSServiceException, type SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import * as zod from 'zod';
import { ConfigError, InvalidMessageError, StorageError } from '../src/core/errors.ts';
import { queueAttributes, queueError, requireQueueUrl, sendBatch, sendMessage, sendMessages, withDeadLetterQueue, type BatchEntry } from '../src/core/queues.ts';
import { thrown } from './support/thrown.ts';

const URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments';
const CONFIG = { segmentsQueueUrl: URL, deletionsQueueUrl: undefined };
const MAX_BATCH_BYTES = 256 * 1024;

const sqsError = (name: string, httpStatusCode: number | undefined) =>
  new SQSServiceException({ name, $fault: httpStatusCode !== undefined && httpStatusCode >= 500 ? 'server' : 'client', $metadata: { httpStatusCode }, message: `${name} message` });

interface Sent {
  readonly command: string;
  readonly input: Record<string, unknown>;
}
type Answer = object | Error;

/** A client that answers each command with `answer(command)`; it records every command's name and input. */
function fakeSqs(answer: (sent: Sent) => Answer = () => ({})) {
  const sent: Sent[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }) {
      const record = { command: command.constructor.name, input: command.input };
      sent.push(record);
      const out = answer(record);
      if (out instanceof Error) throw out;
      return out;
    },
  };
  return { sqs: client as unknown as SQSClient, sent };
}

/** A client that confirms every entry of every SendMessageBatch. */
const confirmingAll = () => fakeSqs(({ input }) => ({ Successful: (input.Entries as { Id: string }[]).map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })) }));

const entryIds = (s: Sent) => (s.input.Entries as { Id: string }[]).map((e) => e.Id);
const entries = (count: number, body: (i: number) => string = (i) => `body ${i}`): BatchEntry[] => Array.from({ length: count }, (_, i) => ({ id: `e${i}`, body: body(i) }));

/** What `p` rejects with, checked to be a `type`. */
async function rejection<E extends Error>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as E;
}

describe('queue URLs', () => {
  it('returns the configured URL, or a ConfigError naming the variable and what the queue is for', () => {
    expect(requireQueueUrl(CONFIG, 'segments')).toBe(URL);
    const err = thrown(() => requireQueueUrl(CONFIG, 'deletions'), ConfigError);
    expect(err.variable).toBe('S3_STORAGE_DELETIONS_QUEUE_URL');
    expect(err.message).toBe('S3_STORAGE_DELETIONS_QUEUE_URL is not set; deletion announcements are sent to it and cleanup drains it');
  });
});

describe('queueError', () => {
  it('keeps a StorageError as it is', () => {
    const original = new StorageError('X', 'b', undefined, 'm', { retryable: false });
    expect(queueError('SendMessage', URL, original)).toBe(original);
  });

  it('an SQS answer: retryable by its status, which the message names', () => {
    const throttled = queueError('SendMessage', URL, sqsError('Throttling', 503));
    expect(throttled).toMatchObject({ operation: 'SendMessage', bucket: URL, retryable: true, httpStatus: 503, message: `SendMessage ${URL} failed: Throttling 503: Throttling message` });
    expect(queueError('SendMessage', URL, sqsError('InvalidParameterValue', 400))).toMatchObject({ retryable: false, httpStatus: 400 });
  });

  it('an SQS error without a status is not retryable, and its message names no status', () => {
    const err = queueError('GetQueueUrl', 'arn', sqsError('QueueDoesNotExist', undefined));
    expect(err).toMatchObject({ retryable: false, httpStatus: undefined, message: 'GetQueueUrl arn failed: QueueDoesNotExist: QueueDoesNotExist message' });
  });

  it('anything else (network, a thrown string) is retryable; a non-Error is named Error', () => {
    const cause = new TypeError('socket hang up');
    expect(queueError('SendMessage', URL, cause)).toMatchObject({ retryable: true, httpStatus: undefined, cause, message: `SendMessage ${URL} failed: TypeError: socket hang up` });
    expect(queueError('SendMessage', URL, 'boom')).toMatchObject({ retryable: true, cause: 'boom', message: `SendMessage ${URL} failed: Error: boom` });
  });
});

describe('sendMessage', () => {
  const schema = zod.object({ n: zod.number() });

  it('validates the message and sends it as JSON to its queue; resolves to the message id', async () => {
    const { sqs, sent } = fakeSqs(() => ({ MessageId: 'mid-1' }));
    expect(await sendMessage(sqs, CONFIG, { queue: 'segments', schema, message: { n: 1 }, what: 'test message' })).toBe('mid-1');
    expect(sent).toEqual([{ command: 'SendMessageCommand', input: { QueueUrl: URL, MessageBody: '{"n":1}' } }]);
  });

  it('an answer without a message id resolves to an empty string', async () => {
    const { sqs } = fakeSqs(() => ({}));
    expect(await sendMessage(sqs, CONFIG, { queue: 'segments', schema, message: { n: 1 }, what: 'test message' })).toBe('');
  });

  it('an invalid message is not sent; a refused send is a StorageError naming SendMessage and the queue', async () => {
    const { sqs, sent } = fakeSqs(() => sqsError('AccessDenied', 403));
    await rejection(sendMessage(sqs, CONFIG, { queue: 'segments', schema, message: { n: 'x' }, what: 'test message' }), InvalidMessageError);
    expect(sent).toEqual([]);
    const err = await rejection(sendMessage(sqs, CONFIG, { queue: 'segments', schema, message: { n: 2 }, what: 'test message' }), StorageError);
    expect(err).toMatchObject({ operation: 'SendMessage', bucket: URL, httpStatus: 403, message: `SendMessage ${URL} failed: AccessDenied 403: AccessDenied message` });
  });
});

describe('sendBatch: how entries are cut into requests', () => {
  it('no entries: no request', async () => {
    const { sqs, sent } = confirmingAll();
    expect(await sendBatch(sqs, URL, [])).toEqual(new Map());
    expect(sent).toEqual([]);
  });

  it('at most 10 entries a request, in order', async () => {
    const { sqs, sent } = confirmingAll();
    const all = entries(25);
    expect(await sendBatch(sqs, URL, all)).toEqual(new Map());
    expect(sent.map((s) => s.command)).toEqual(['SendMessageBatchCommand', 'SendMessageBatchCommand', 'SendMessageBatchCommand']);
    expect(sent.map(entryIds)).toEqual([all.slice(0, 10), all.slice(10, 20), all.slice(20)].map((c) => c.map((e) => e.id)));
    expect(sent[0]?.input).toEqual({ QueueUrl: URL, Entries: all.slice(0, 10).map((e) => ({ Id: e.id, MessageBody: e.body })) });
  });

  it('bodies fill a request up to 256 KiB exactly, counted in bytes', async () => {
    // 'é' is 2 bytes in UTF-8: two bodies of a quarter of the limit in characters are half of it in bytes.
    const half = 'é'.repeat(MAX_BATCH_BYTES / 4);
    const { sqs, sent } = confirmingAll();
    await sendBatch(sqs, URL, entries(5, () => half));
    expect(sent.map(entryIds)).toEqual([
      ['e0', 'e1'],
      ['e2', 'e3'],
      ['e4'],
    ]);
  });

  it('one byte over the limit starts a new request', async () => {
    const { sqs, sent } = confirmingAll();
    await sendBatch(sqs, URL, [
      { id: 'a', body: 'x'.repeat(MAX_BATCH_BYTES - 10) },
      { id: 'b', body: 'y'.repeat(10) },
      { id: 'c', body: 'z' },
      { id: 'd', body: 'w'.repeat(MAX_BATCH_BYTES - 1) },
      { id: 'e', body: 'v' },
    ]);
    expect(sent.map(entryIds)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('an entry larger than the limit goes alone, never after an empty request', async () => {
    const { sqs, sent } = confirmingAll();
    await sendBatch(sqs, URL, [
      { id: 'big', body: 'x'.repeat(MAX_BATCH_BYTES + 1) },
      { id: 'small', body: 's' },
    ]);
    expect(sent.map(entryIds)).toEqual([['big'], ['small']]);
  });

  it('small bodies do not add up past 10 entries; attributes travel as MessageAttributes', async () => {
    const { sqs, sent } = confirmingAll();
    const attributes = { kind: { DataType: 'String', StringValue: 'segment' } };
    await sendBatch(sqs, URL, [{ id: 'with', body: '{}', attributes }, ...entries(10)]);
    expect(sent.map((s) => entryIds(s).length)).toEqual([10, 1]);
    expect((sent[0]?.input.Entries as unknown[])[0]).toEqual({ Id: 'with', MessageBody: '{}', MessageAttributes: attributes });
  });
});

describe('sendBatch: partial failures', () => {
  it('reports the entries SQS refused with Code: Message, across requests', async () => {
    const { sqs } = fakeSqs(({ input }) => {
      const ids = (input.Entries as { Id: string }[]).map((e) => e.Id);
      // The last entry of each request is refused, the others confirmed.
      const refused = ids.at(-1);
      return { Successful: ids.filter((id) => id !== refused).map((Id) => ({ Id })), Failed: [{ Id: refused, Code: `Code-${refused}`, Message: `refused ${refused}`, SenderFault: true }] };
    });
    const refused = await sendBatch(sqs, URL, entries(12));
    expect(refused).toEqual(
      new Map([
        ['e9', 'Code-e9: refused e9'],
        ['e11', 'Code-e11: refused e11'],
      ]),
    );
  });

  it('a refusal without a code, message or id still says what it can', async () => {
    const { sqs } = fakeSqs(() => ({
      Successful: [{ Id: 'e0' }],
      Failed: [
        { Id: 'e1', Message: 'no code' },
        { Id: 'e2', Code: 'NoMessage' },
        { Code: 'NoId', Message: 'lost' },
      ],
    }));
    const refused = await sendBatch(sqs, URL, entries(3));
    expect(refused.get('e1')).toBe('Error: no code');
    expect(refused.get('e2')).toBe('NoMessage: ');
    expect(refused.get('?')).toBe('NoId: lost');
    expect(refused.has('e0')).toBe(false);
    expect(refused.size).toBe(3);
  });

  it('an entry the answer neither confirms nor refuses is reported as not confirmed', async () => {
    const { sqs } = fakeSqs(() => ({ Successful: [{ Id: 'e0' }, { Id: 'e2' }] }));
    expect(await sendBatch(sqs, URL, entries(4))).toEqual(
      new Map([
        ['e1', 'not confirmed by SQS'],
        ['e3', 'not confirmed by SQS'],
      ]),
    );
    const { sqs: silent } = fakeSqs(() => ({}));
    expect([...(await sendBatch(silent, URL, entries(2))).keys()]).toEqual(['e0', 'e1']);
  });

  it('a request refused as a whole is a StorageError naming SendMessageBatch; later requests are not sent', async () => {
    const { sqs, sent } = fakeSqs(() => sqsError('ServiceUnavailable', 503));
    const err = await rejection(sendBatch(sqs, URL, entries(11)), StorageError);
    expect(err).toMatchObject({ operation: 'SendMessageBatch', bucket: URL, retryable: true, message: `SendMessageBatch ${URL} failed: ServiceUnavailable 503: ServiceUnavailable message` });
    expect(sent).toHaveLength(1);
  });
});

describe('sendMessages', () => {
  const schema = zod.object({ n: zod.number() });

  it('validates every message first (nothing sent on a bad one), then sends them as JSON by id', async () => {
    const { sqs, sent } = confirmingAll();
    await rejection(sendMessages(sqs, CONFIG, { queue: 'segments', schema, what: 'test message', messages: new Map<string, unknown>([['a', { n: 1 }], ['b', { n: 'x' }]]) }), InvalidMessageError);
    expect(sent).toEqual([]);
    expect(await sendMessages(sqs, CONFIG, { queue: 'segments', schema, what: 'test message', messages: new Map([['a', { n: 1 }], ['b', { n: 2 }]]) })).toEqual(new Map());
    expect(sent.map((s) => s.input)).toEqual([{ QueueUrl: URL, Entries: [{ Id: 'a', MessageBody: '{"n":1}' }, { Id: 'b', MessageBody: '{"n":2}' }] }]);
  });
});

describe('queueAttributes', () => {
  it('asks for the named attributes; none in the answer is an empty record; a refusal names GetQueueAttributes', async () => {
    const { sqs, sent } = fakeSqs(() => ({ Attributes: { QueueArn: 'arn:q' } }));
    expect(await queueAttributes(sqs, URL, ['QueueArn'])).toEqual({ QueueArn: 'arn:q' });
    expect(sent).toEqual([{ command: 'GetQueueAttributesCommand', input: { QueueUrl: URL, AttributeNames: ['QueueArn'] } }]);
    expect(await queueAttributes(fakeSqs(() => ({})).sqs, URL, ['QueueArn'])).toEqual({});
    const err = await rejection(queueAttributes(fakeSqs(() => sqsError('QueueDoesNotExist', 400)).sqs, URL, ['QueueArn']), StorageError);
    expect(err).toMatchObject({ operation: 'GetQueueAttributes', bucket: URL, message: `GetQueueAttributes ${URL} failed: QueueDoesNotExist 400: QueueDoesNotExist message` });
  });
});

describe('withDeadLetterQueue', () => {
  const QUEUE_ARN = 'arn:aws:sqs:eu-west-1:123456789012:segments';
  const DLQ_ACCOUNT = '210987654321';
  const DLQ_NAME = 'segments-dlq';
  const DLQ_ARN = `arn:aws:sqs:eu-west-1:${DLQ_ACCOUNT}:${DLQ_NAME}`;
  const DLQ_URL = `https://sqs.eu-west-1.amazonaws.com/${DLQ_ACCOUNT}/${DLQ_NAME}`;
  const VARIABLE = 'S3_STORAGE_SEGMENTS_QUEUE_URL';

  /** A client whose queue has `attributes` and whose GetQueueUrl answers `queueUrl`. */
  const queue = (attributes: Record<string, string>, queueUrl: Answer = { QueueUrl: DLQ_URL }) => fakeSqs(({ command }) => (command === 'GetQueueAttributesCommand' ? { Attributes: attributes } : queueUrl));

  it('finds the dead-letter queue by the name and account in its ARN; maxReceiveCount as a number', async () => {
    const { sqs, sent } = queue({ QueueArn: QUEUE_ARN, RedrivePolicy: JSON.stringify({ deadLetterTargetArn: DLQ_ARN, maxReceiveCount: '5' }) });
    expect(await withDeadLetterQueue(sqs, URL, VARIABLE)).toEqual({ url: URL, arn: QUEUE_ARN, deadLetter: { url: DLQ_URL, arn: DLQ_ARN }, maxReceiveCount: 5 });
    expect(sent).toEqual([
      { command: 'GetQueueAttributesCommand', input: { QueueUrl: URL, AttributeNames: ['QueueArn', 'RedrivePolicy'] } },
      { command: 'GetQueueUrlCommand', input: { QueueName: DLQ_NAME, QueueOwnerAWSAccountId: DLQ_ACCOUNT } },
    ]);
    const numeric = queue({ QueueArn: QUEUE_ARN, RedrivePolicy: JSON.stringify({ deadLetterTargetArn: DLQ_ARN, maxReceiveCount: 3 }) });
    expect((await withDeadLetterQueue(numeric.sqs, URL, VARIABLE)).maxReceiveCount).toBe(3);
  });

  it('without maxReceiveCount, it is undefined; an ARN without an account asks for the queue by name alone', async () => {
    const arn = `arn:aws:sqs:eu-west-1::${DLQ_NAME}`;
    const { sqs, sent } = queue({ QueueArn: QUEUE_ARN, RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn }) });
    const found = await withDeadLetterQueue(sqs, URL, VARIABLE);
    expect(found).toEqual({ url: URL, arn: QUEUE_ARN, deadLetter: { url: DLQ_URL, arn }, maxReceiveCount: undefined });
    expect(sent[1]?.input).toEqual({ QueueName: DLQ_NAME });
  });

  it('a RedrivePolicy that is not JSON, or not of the expected shape, is a ConfigError keeping the cause', async () => {
    for (const [policy, cause] of [
      ['{not json', SyntaxError],
      [JSON.stringify({ deadLetterTargetArn: 42 }), zod.ZodError],
    ] as const) {
      const { sqs, sent } = queue({ QueueArn: QUEUE_ARN, RedrivePolicy: policy });
      const err = await rejection(withDeadLetterQueue(sqs, URL, VARIABLE), ConfigError);
      expect(err.variable).toBe(VARIABLE);
      expect(err.message).toBe(`${URL} has a RedrivePolicy that is not JSON naming a deadLetterTargetArn`);
      expect(err.cause).toBeInstanceOf(cause);
      expect(sent).toHaveLength(1);
    }
  });

  it('no RedrivePolicy, one without a target, or no QueueArn: a ConfigError, nothing to redrive', async () => {
    const withoutTarget: Record<string, string>[] = [{ QueueArn: QUEUE_ARN }, { QueueArn: QUEUE_ARN, RedrivePolicy: '{"maxReceiveCount":5}' }, { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: DLQ_ARN }) }];
    for (const attributes of withoutTarget) {
      const { sqs, sent } = queue(attributes);
      const err = await rejection(withDeadLetterQueue(sqs, URL, VARIABLE), ConfigError);
      expect(err).toMatchObject({ variable: VARIABLE, message: `${URL} (${VARIABLE}) has no dead-letter queue (no RedrivePolicy): nothing to redrive` });
      expect(sent).toHaveLength(1);
    }
  });

  it('a GetQueueUrl refusal, or an answer without a URL, is a StorageError naming GetQueueUrl and the ARN', async () => {
    const policy = { QueueArn: QUEUE_ARN, RedrivePolicy: JSON.stringify({ deadLetterTargetArn: DLQ_ARN }) };
    const refusal = sqsError('QueueDoesNotExist', 400);
    const refused = await rejection(withDeadLetterQueue(queue(policy, refusal).sqs, URL, VARIABLE), StorageError);
    expect(refused).toMatchObject({ operation: 'GetQueueUrl', bucket: DLQ_ARN, cause: refusal, message: `GetQueueUrl ${DLQ_ARN} failed: QueueDoesNotExist 400: QueueDoesNotExist message` });
    const empty = await rejection(withDeadLetterQueue(queue(policy, {}).sqs, URL, VARIABLE), StorageError);
    expect(empty).toMatchObject({ operation: 'GetQueueUrl', bucket: DLQ_ARN, retryable: true, message: `GetQueueUrl ${DLQ_ARN} failed: Error: no QueueUrl in the answer` });
  });
});
