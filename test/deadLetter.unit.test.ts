/**
 * The upload function's dead-lettering (src/upload/deadLetter.ts) against a fake SQS client: the reason line
 * (whitespace folded, cut at 1000 characters), the attributes a dead-lettered record carries (its own ones kept
 * within SQS's limit of 10, ours typed String/Number, the receive count) and the three error lines it logs.
 * Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/core/errors.ts';
import { logger } from '../src/core/logger.ts';
import { deadLetterPoison, poisonReason } from '../src/upload/deadLetter.ts';
import { capturedOutput } from './support/capturedOutput.ts';

const CONFIG = { sourceRoot: '/data' };
const DLQ_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments-dlq';
const SOURCE_ARN = 'arn:aws:sqs:eu-west-1:123456789012:segments';

function record(messageId: string, receiveCount: string, messageAttributes: SQSMessageAttributes = {}): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: `{"segment":"${messageId}"}`,
    attributes: { ApproximateReceiveCount: receiveCount, SentTimestamp: '1', SenderId: 's', ApproximateFirstReceiveTimestamp: '1' },
    messageAttributes,
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: SOURCE_ARN,
    awsRegion: 'eu-west-1',
  };
}

interface Entry {
  readonly Id: string;
  readonly MessageBody: string;
  readonly MessageAttributes?: Record<string, { DataType?: string; StringValue?: string; BinaryValue?: Uint8Array }>;
}

/** An SQS client whose SendMessageBatch is answered by `answer` (default: every entry sent); it records the entries. */
function fakeSqs(answer: (entries: Entry[]) => object | Error = (entries) => ({ Successful: entries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })) })) {
  const sent: Entry[] = [];
  const client = {
    async send(command: { input: { Entries?: Entry[] } }) {
      const entries = command.input.Entries ?? [];
      sent.push(...entries);
      const out = answer(entries);
      if (out instanceof Error) throw out;
      return out;
    },
  };
  return { dlq: { sqs: client as unknown as SQSClient, url: DLQ_URL }, sent };
}

// The error lines are asserted: whatever LOG_LEVEL the run has, this file logs at INFO (a fresh module per file).
beforeAll(() => logger.setLogLevel('INFO'));

const poison = (message = 'bad announcement') => new InvalidMessageError('body', message);

/** The JSON log lines written while `run` ran. */
async function logLines(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const out = await capturedOutput(run);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"level"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('poisonReason', () => {
  it('folds runs of whitespace into one space', () => {
    expect(poisonReason(poison('a\n  b\t\tc'), CONFIG)).toBe('InvalidMessageError: a b c');
  });

  it('keeps a line of exactly 1000 characters and cuts a longer one to 1000, ending in …', () => {
    const prefix = 'InvalidMessageError: ';
    const exact = 'x'.repeat(1000 - prefix.length);
    expect(poisonReason(poison(exact), CONFIG)).toBe(`${prefix}${exact}`);
    const long = `${'y'.repeat(1000 - prefix.length)}zzz`;
    const cut = poisonReason(poison(long), CONFIG);
    expect(cut).toBe(`${prefix}${'y'.repeat(999 - prefix.length)}…`);
    expect(cut).toHaveLength(1000);
  });
});

describe('deadLetterPoison', () => {
  it('sends the record as it came, with its own attributes (at most 6, no bks- ones) and ours, typed', async () => {
    const { dlq, sent } = fakeSqs();
    const binary = Buffer.from([0, 1, 2, 250]);
    const own: SQSMessageAttributes = {
      a: { dataType: 'String', stringValue: 'first' },
      b: { dataType: 'Binary', binaryValue: binary.toString('base64') },
      'bks-reason': { dataType: 'String', stringValue: 'stale reason' },
      c: { dataType: 'String.custom' },
      d: { dataType: 'Number', stringValue: '4' },
      e: { dataType: 'String', stringValue: 'e' },
      f: { dataType: 'String', stringValue: 'f' },
      g: { dataType: 'String', stringValue: 'g' },
      h: { dataType: 'String', stringValue: 'h' },
    };
    const r = record('m1', '3', own);
    let answer: unknown;
    await capturedOutput(async () => {
      answer = await deadLetterPoison({ batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'other' }] }, [{ record: r, error: poison() }], CONFIG, dlq);
    });
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: 'other' }] });
    expect(sent).toHaveLength(1);
    expect(sent[0]?.MessageBody).toBe(r.body);
    expect(sent[0]?.MessageAttributes).toEqual({
      a: { DataType: 'String', StringValue: 'first' },
      b: { DataType: 'Binary', BinaryValue: binary },
      d: { DataType: 'Number', StringValue: '4' },
      e: { DataType: 'String', StringValue: 'e' },
      f: { DataType: 'String', StringValue: 'f' },
      g: { DataType: 'String', StringValue: 'g' },
      'bks-error': { DataType: 'String', StringValue: 'InvalidMessageError' },
      'bks-reason': { DataType: 'String', StringValue: 'InvalidMessageError: bad announcement' },
      'bks-source-queue': { DataType: 'String', StringValue: SOURCE_ARN },
      'bks-receive-count': { DataType: 'Number', StringValue: '3' },
    });
  });

  it('a record without a receive count is counted as received once', async () => {
    const { dlq, sent } = fakeSqs();
    await capturedOutput(() => deadLetterPoison({ batchItemFailures: [{ itemIdentifier: 'm1' }] }, [{ record: record('m1', ''), error: poison() }], CONFIG, dlq));
    expect(sent[0]?.MessageAttributes?.['bks-receive-count']).toEqual({ DataType: 'Number', StringValue: '1' });
  });

  it('logs each record sent, and each the queue refused (which stays failed)', async () => {
    const { dlq } = fakeSqs((entries) => ({ Successful: [{ Id: entries[0]?.Id, MessageId: 'x' }], Failed: [{ Id: entries[1]?.Id, Code: 'InvalidParameterValue', Message: 'too big', SenderFault: true }] }));
    let answer: unknown;
    const lines = await logLines(async () => {
      answer = await deadLetterPoison(
        { batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] },
        [
          { record: record('m1', '1'), error: poison('one') },
          { record: record('m2', '1'), error: poison('two') },
        ],
        CONFIG,
        dlq,
      );
    });
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: 'm2' }] });
    expect(lines).toEqual([
      expect.objectContaining({ level: 'ERROR', message: 'record can never succeed: sent to the dead-letter queue at once', messageId: 'm1', reason: 'InvalidMessageError: one', deadLetterQueue: DLQ_URL }),
      expect.objectContaining({ level: 'ERROR', message: 'the dead-letter queue refused a poison record; it stays failed', messageId: 'm2', refusal: 'InvalidParameterValue: too big' }),
    ]);
  });

  it('logs a failed SendMessageBatch and leaves the records failed', async () => {
    const { dlq } = fakeSqs(() => new Error('socket hang up'));
    const failures = { batchItemFailures: [{ itemIdentifier: 'm1' }] };
    let answer: unknown;
    const lines = await logLines(async () => {
      answer = await deadLetterPoison(failures, [{ record: record('m1', '1'), error: poison() }], CONFIG, dlq);
    });
    expect(answer).toEqual(failures);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message: 'poison records could not be sent to the dead-letter queue; they stay failed',
        deadLetterQueue: DLQ_URL,
        errorName: 'StorageError',
        errorMessage: `SendMessageBatch ${DLQ_URL} failed: Error: socket hang up`,
      }),
    ]);
  });
});
