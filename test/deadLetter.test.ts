/**
 * Fast failure (issue 16, acceptance 4), through `serve` on the embedded servers: a malformed announcement and
 * one whose source is missing reach the DLQ on their first receive, with their reason as message attributes,
 * while a good one is stored; `redrive --dry-run` shows them, `redrive` moves them back, without the reason
 * attributes. Errors a redelivery may cure stay failed; the message move task is used where SQS has it.
 */
import { ChangeMessageVisibilityCommand, ReceiveMessageCommand, SendMessageCommand, SQSServiceException, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { createClients } from '../src/core/clients.ts';
import { loadConfig } from '../src/core/config.ts';
import { ConfigError, InvalidMessageError, LocationError, PathOutsideRootError, StorageError } from '../src/core/errors.ts';
import { resetRuntime } from '../src/core/runtime.ts';
import { sqsRecord } from '../src/local/lambdaEvents.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { redrive } from '../src/redrive/redrive.ts';
import { deadLetterPoison, poisonReason } from '../src/upload/deadLetter.ts';

let servers: LocalServers;
let queue: QueuePair;
let root: string;
let env: Record<string, string>;
let sqs: SQSClient;

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const code = await main(argv, { env, stdout, stderr });
  return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

async function drain(url: string) {
  const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }));
  return out.Messages ?? [];
}

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket('dlq-bucket');
  queue = servers.createQueue('dlq-segments', { maxReceiveCount: 5 });
  root = await mkdtemp(join(tmpdir(), 'bks-dlq-'));
  await writeFile(join(root, 'good'), 'a good segment');
  env = {
    ...servers.env(),
    S3_STORAGE_BUCKET: 'dlq-bucket',
    S3_STORAGE_ENCRYPTION_KEY: 'dead-letter-test-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    S3_STORAGE_SOURCE_ROOT: root,
    S3_STORAGE_SEGMENTS_QUEUE_URL: queue.url,
    S3_STORAGE_SEGMENTS_DLQ_URL: queue.dlqUrl,
    LOG_LEVEL: 'CRITICAL',
  };
  sqs = createClients(loadConfig(env)).sqs;
  // serve runs the upload handler in this process: its runtime comes from the process environment.
  Object.assign(process.env, env);
  resetRuntime();
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

const MALFORMED = '{"version":1,"dataspace":"dlq","segmentId":"bad id!","source":"file:///x"}';

describe('dead-letter queue', () => {
  it('a malformed announcement and a missing source reach the DLQ on their first receive, with their reason; redrive moves them back', async () => {
    const missing = JSON.stringify({ version: 1, dataspace: 'dlq', segmentId: 'gone', source: `file://${join(root, 'gone')}` });
    for (const body of [MALFORMED, missing, JSON.stringify({ version: 1, dataspace: 'dlq', segmentId: 'good', source: `file://${join(root, 'good')}` })]) {
      await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));
    }
    // One pass of serve: every record is received once; none is reported failed, so none comes back.
    const served = await cli(['serve', '--until-idle', '1']);
    expect(JSON.parse(served.stdout)).toEqual({ received: 3, failed: 0 });

    const dry = JSON.parse((await cli(['redrive', '--dry-run'])).stdout) as { messages: number; sample: { error: string; reason: string; body: string }[] };
    expect(dry.messages).toBe(2);
    const byBody = new Map(dry.sample.map((s) => [s.body, s]));
    expect(byBody.get(MALFORMED)).toMatchObject({ error: 'InvalidMessageError', reason: expect.stringMatching(/^InvalidMessageError: segment announcement: segmentId "bad id!"/) });
    expect(byBody.get(missing)).toMatchObject({ error: 'LocationError', reason: expect.stringMatching(/gone"? does not exist/) });

    const dead = await drain(queue.dlqUrl);
    expect(dead.map((m) => m.MessageAttributes?.['bks-receive-count']?.StringValue)).toEqual(['1', '1']);
    expect(dead.every((m) => m.MessageAttributes?.['bks-source-queue']?.StringValue?.endsWith(':dlq-segments'))).toBe(true);
    expect(await drain(queue.url)).toEqual([]);

    // Visible again (the drain above received them), then redrive moves both back, without our attributes.
    for (const m of dead) await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queue.dlqUrl, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 }));
    const moved = await cli(['redrive']);
    expect([moved.code, JSON.parse(moved.stdout)]).toEqual([0, expect.objectContaining({ method: 'receive-and-send', moved: 2, failed: 0 })]);
    const back = await drain(queue.url);
    expect(back.map((m) => m.Body).sort()).toEqual([MALFORMED, missing].sort());
    expect(back.every((m) => Object.keys(m.MessageAttributes ?? {}).length === 0)).toBe(true);
    expect(await drain(queue.dlqUrl)).toEqual([]);
  });

  it('only errors of the record itself are poison: access, throttling, configuration and a missing source root keep the redrive', () => {
    const config = { sourceRoot: '/mnt/segments' };
    expect(poisonReason(new InvalidMessageError('size', 'segment announcement: size must be ≥ 0'), config)).toBe('InvalidMessageError: segment announcement: size must be ≥ 0');
    expect(poisonReason(new LocationError('/mnt/segments/x', '/mnt/segments/x does not exist or cannot be read'), config)).toMatch(/^LocationError/);
    expect(poisonReason(new PathOutsideRootError('/etc/x', 'S3_STORAGE_SOURCE_ROOT', '/mnt/segments'), config)).toMatch(/^PathOutsideRootError/);
    expect(poisonReason(new LocationError('/mnt/segments', 'S3_STORAGE_SOURCE_ROOT /mnt/segments does not exist or cannot be read'), config)).toBeUndefined();
    expect(poisonReason(new PathOutsideRootError('/x', 'S3_STORAGE_SOURCE_ROOT', undefined), config)).toBeUndefined();
    expect(poisonReason(new StorageError('GetObject', 'b', 'k', 'AccessDenied 403', { retryable: false, httpStatus: 403 }), config)).toBeUndefined();
    expect(poisonReason(new StorageError('GetObject', 'b', 'k', 'SlowDown 503', { retryable: true, httpStatus: 503 }), config)).toBeUndefined();
    expect(poisonReason(new ConfigError('S3_STORAGE_BUCKET', 'S3_STORAGE_BUCKET is not set'), config)).toBeUndefined();
    expect(poisonReason(new Error('boom'), config)).toBeUndefined();
  });

  it('a poison record the DLQ refuses stays failed, and so does every record when the DLQ cannot be reached', async () => {
    const record = (id: string): SQSRecord => sqsRecord({ messageId: id, body: '{}' }, queue.url, servers.region);
    const answer = { batchItemFailures: [{ itemIdentifier: 'p1' }, { itemIdentifier: 'p2' }, { itemIdentifier: 'r1' }] };
    const failed = [
      { record: record('p1'), error: new InvalidMessageError('version', 'segment announcement: version is required') },
      { record: record('p2'), error: new InvalidMessageError('version', 'segment announcement: version is required') },
      { record: record('r1'), error: new StorageError('PutObject', 'b', 'k', 'SlowDown', { retryable: true, httpStatus: 503 }) },
    ];
    const refusing = { send: async () => ({ Successful: [{ Id: 'r0' }], Failed: [{ Id: 'r1', Code: 'InternalError', SenderFault: false }] }) } as unknown as SQSClient;
    expect(await deadLetterPoison(answer, failed, { sourceRoot: root }, { sqs: refusing, url: queue.dlqUrl })).toEqual({ batchItemFailures: [{ itemIdentifier: 'p2' }, { itemIdentifier: 'r1' }] });
    const down = createClients(loadConfig({ ...env, AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:9' })).sqs;
    expect(await deadLetterPoison(answer, failed, { sourceRoot: root }, { sqs: down, url: queue.dlqUrl })).toEqual(answer);
  }, 60_000);

  it("uses SQS's message move task where the server has it", async () => {
    const calls: string[] = [];
    let polls = 0;
    const aws = {
      send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
        calls.push(`${command.constructor.name} ${JSON.stringify(command.input)}`);
        if (command.constructor.name === 'StartMessageMoveTaskCommand') return { TaskHandle: 'h' };
        return { Results: [{ Status: ++polls < 3 ? 'RUNNING' : 'COMPLETED', ApproximateNumberOfMessagesMoved: polls * 4 }] };
      },
    } as unknown as SQSClient;
    const pair = { url: 'https://sqs/q', arn: 'arn:aws:sqs:eu-west-1:123456789012:q', deadLetter: { url: 'https://sqs/q-dlq', arn: 'arn:aws:sqs:eu-west-1:123456789012:q-dlq' }, maxReceiveCount: 5 };
    expect(await redrive(aws, pair, { sleep: async () => undefined })).toEqual({ method: 'message-move-task', moved: 12, failed: 0 });
    expect(calls[0]).toBe('StartMessageMoveTaskCommand {"SourceArn":"arn:aws:sqs:eu-west-1:123456789012:q-dlq","DestinationArn":"arn:aws:sqs:eu-west-1:123456789012:q"}');
    expect(calls).toHaveLength(4);
    // A server without it (fauxqs answers InvalidAction) is the fallback's case, shown above; other errors are errors.
    const denied = { send: async () => Promise.reject(new SQSServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'denied' })) } as unknown as SQSClient;
    await expect(redrive(denied, pair)).rejects.toThrow(/StartMessageMoveTask .*AccessDenied 403/);
  });
});
