/**
 * The three handlers as Lambda runs them, on the embedded servers: Powertools' logger context on every log line
 * (request id, function name, cold start), including lines written from src/; a malformed fetch invocation
 * rejected by the parser middleware with the field named; a batch of ten SQS records with one malformed (nine
 * stored, exactly that one reported failed, its log line naming the field); and middy's deadline signal
 * stopping a restore, which leaves nothing behind.
 */
import { ParseError } from '@aws-lambda-powertools/parser/errors';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEADLINE_MARGIN_MS } from '../src/core/deadline.ts';
import { InvalidMessageError } from '../src/core/errors.ts';
import { fetchInvocationSchema, segmentAnnouncementSchema, type FetchInvocation } from '../src/core/messages.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { getRuntime, resetRuntime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { scheduledEvent, sqsRecord } from '../src/local/lambdaEvents.ts';
import { countRequests } from './support/fetchHarness.ts';
import { patternStream } from './support/sourceData.ts';

// Lambda sets it for on-demand environments; Powertools reports a cold start only then. Set before any import
// builds the logger.
vi.hoisted(() => {
  process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
});

const BUCKET = 'handlers-test';
let servers: LocalServers;
let segments: QueuePair;
let deletions: QueuePair;
let sourceRoot: string;
let restoreRoot: string;
let handlers: { upload: typeof import('../functions/upload.ts').handler; fetch: typeof import('../functions/fetch.ts').handler; cleanup: typeof import('../functions/cleanup.ts').handler };

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket(BUCKET);
  segments = servers.createQueue('handler-segments');
  deletions = servers.createQueue('handler-deletions', { maxReceiveCount: 2 });
  sourceRoot = await mkdtemp(join(tmpdir(), 'bks-handlers-src-'));
  restoreRoot = await mkdtemp(join(tmpdir(), 'bks-handlers-restore-'));
  // The handlers build their runtime from process.env at their cold start.
  Object.assign(process.env, {
    ...servers.env(),
    S3_STORAGE_BUCKET: BUCKET,
    S3_STORAGE_ENCRYPTION_KEY: 'handlers-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFG',
    S3_STORAGE_SOURCE_ROOT: sourceRoot,
    S3_STORAGE_RESTORE_ROOT: restoreRoot,
    S3_STORAGE_SEGMENTS_QUEUE_URL: segments.url,
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    // Deletions carried out by the run that marks them (the grace period has its own tests).
    S3_STORAGE_DELETION_DELAY_HOURS: '0',
  });
  resetRuntime();
  handlers = {
    upload: (await import('../functions/upload.ts')).handler,
    fetch: (await import('../functions/fetch.ts')).handler,
    cleanup: (await import('../functions/cleanup.ts')).handler,
  };
});
afterAll(async () => {
  await servers?.stop();
  await rm(sourceRoot, { recursive: true, force: true });
  await rm(restoreRoot, { recursive: true, force: true });
});

/** One JSON line of Powertools' logger. */
interface LogLine {
  readonly level: string;
  readonly message: string;
  readonly [key: string]: unknown;
}

/**
 * Runs `invoke` and returns what it settled to with the lines the logger wrote meanwhile. Powertools' logger
 * writes through its own Console on process.stdout and process.stderr (not through the global console).
 */
async function withLogs<T>(invoke: () => Promise<T>): Promise<{ result: T | undefined; error: unknown; lines: LogLine[] }> {
  const chunks: string[] = [];
  const capture = (chunk: string | Uint8Array) => (chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')), true);
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  let result: T | undefined;
  let error: unknown;
  try {
    result = await invoke();
  } catch (err) {
    error = err;
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  // Metric lines (EMF, with their `_aws` key) are the metrics tests' business (test/metrics.test.ts).
  const lines = chunks
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{') && !line.startsWith('{"_aws"'))
    .map((line) => JSON.parse(line) as LogLine);
  return { result, error, lines };
}

async function writeSource(name: string, size = 10_000): Promise<string> {
  const path = join(sourceRoot, name);
  await pipeline(patternStream(size, name), createWriteStream(path));
  return `file://${path}`;
}

async function announcement(segmentId: string, size?: number): Promise<string> {
  return JSON.stringify({ version: 1, dataspace: 'hd', segmentId, source: await writeSource(segmentId, size) });
}

function sqsEvent(bodies: readonly string[]): SQSEvent {
  return { Records: bodies.map((body) => sqsRecord({ messageId: randomUUID(), body, receiptHandle: 'r' }, segments.url, servers.region)) };
}

async function isStored(segmentId: string): Promise<boolean> {
  const runtime = await getRuntime();
  return (await runtime.store.head({ bucket: BUCKET, region: servers.region }, formatSegmentKey('', { dataspace: 'hd', segmentId }))) !== undefined;
}

/** Invokes the fetch handler as Lambda does, with the raw event: its parser middleware checks it. */
function invokeFetch(event: unknown, timeoutMs?: number) {
  return handlers.fetch(event as FetchInvocation, lambdaContext('fetch', timeoutMs));
}

async function restoreEntries(name: string): Promise<string[]> {
  return (await readdir(restoreRoot)).filter((entry) => entry.includes(name));
}

describe('the request context on every log line (Powertools injectLambdaContext)', () => {
  it('upload: request id and function name on every line; the first invocation is the cold start, the next is not', async () => {
    for (const [segmentId, coldStart] of [['ctx-1', true], ['ctx-2', false]] as const) {
      const context = lambdaContext('upload');
      const { result, lines } = await withLogs(async () => handlers.upload(sqsEvent([await announcement(segmentId)]), context));
      expect(result).toEqual({ batchItemFailures: [] });
      expect(lines.map((l) => l.message)).toEqual(['segment stored']);
      for (const line of lines) {
        expect(line).toMatchObject({ function_request_id: context.awsRequestId, function_name: 'bucket-storage-upload', cold_start: coldStart });
      }
    }
  });

  it('fetch: the restore line carries the invocation request id', async () => {
    const context = lambdaContext('fetch');
    const { result, lines } = await withLogs(() => handlers.fetch({ dataspace: 'hd', segmentId: 'ctx-1', destination: `file://${join(restoreRoot, 'ctx-1')}` }, context));
    expect(result).toMatchObject({ bytesWritten: 10_000 });
    expect(lines.map((l) => l.message)).toEqual(['segment restored']);
    for (const line of lines) expect(line).toMatchObject({ function_request_id: context.awsRequestId, function_name: 'bucket-storage-fetch', cold_start: expect.any(Boolean) });
  });

  it('cleanup: lines written from src/ (a malformed deletion) carry it too', async () => {
    const sqs = (await getRuntime()).clients.sqs;
    await sqs.send(new SendMessageCommand({ QueueUrl: deletions.url, MessageBody: '{oops' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: deletions.url, MessageBody: JSON.stringify({ version: 1, dataspace: 'hd', segmentId: 'ctx-2' }) }));
    const context = lambdaContext('cleanup', 60_000);
    const { result, lines } = await withLogs(() => handlers.cleanup(scheduledEvent(servers.region), context));
    expect(result).toMatchObject({ received: 2, malformed: 1 });
    expect(await isStored('ctx-2')).toBe(false);
    // The first line is written by src/cleanup/deletionsQueue.ts through the shared logger; the last by the size
    // logger, whose first run in a container is due at once.
    expect(lines.map((l) => l.message)).toEqual(['malformed deletion announcement; left on the queue for the DLQ', 'cleanup run', 'bucket storage size']);
    for (const line of lines) expect(line).toMatchObject({ function_request_id: context.awsRequestId, function_name: 'bucket-storage-cleanup', cold_start: expect.any(Boolean) });
  });
});

describe('fetch: a malformed invocation is rejected by the parser middleware, naming the field', () => {
  // Built when the test runs: the restore root exists only then.
  const valid = () => ({ dataspace: 'hd', segmentId: 'ctx-1', destination: `file://${join(restoreRoot, 'malformed')}` });
  it.each([
    ['range.end', () => ({ ...valid(), range: { start: 5, end: 4 } }), 'fetch invocation: range.end is reversed: start must be ≤ end'],
    ['destination', () => ({ dataspace: 'hd', segmentId: 'ctx-1' }), 'fetch invocation: destination is required'],
    ['colour', () => ({ ...valid(), colour: 'red' }), 'fetch invocation: unknown field "colour"; allowed: dataspace, segmentId, destination, range'],
    ['segmentId', () => ({ ...valid(), segmentId: 'a/b' }), 'fetch invocation: segmentId "a/b" contains a character "/"'],
  ])('%s', async (field, event, message) => {
    const s3 = countRequests((await getRuntime()).clients.s3());
    const err = await invokeFetch(event()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidMessageError);
    expect(err).toMatchObject({ name: 'InvalidMessageError', code: 'INVALID_MESSAGE', field });
    expect((err as Error).message).toContain(message);
    // It is the parser middleware's ParseError that was mapped, before the handler ran: no request was made.
    expect((err as Error).cause).toBeInstanceOf(ParseError);
    expect(s3.requests).toEqual([]);
    expect(await restoreEntries('malformed')).toEqual([]);
  });
});

describe('one parse per invocation', () => {
  it('fetch: the parser middleware validates the invocation; nothing validates it again', async () => {
    const schema = fetchInvocationSchema['~standard'];
    const validations = [vi.spyOn(schema, 'validate'), vi.spyOn(fetchInvocationSchema, 'safeParse'), vi.spyOn(fetchInvocationSchema, 'parse')];
    await expect(invokeFetch({ dataspace: 'hd', segmentId: 'ctx-1', destination: `file://${join(restoreRoot, 'once')}` })).resolves.toMatchObject({ bytesWritten: 10_000 });
    const counts = validations.map((v) => v.mock.calls.length);
    for (const v of validations) v.mockRestore();
    expect(counts).toEqual([1, 0, 0]);
  });
});

describe('upload: a batch of ten with one malformed record', () => {
  it.each([
    ['bad JSON', '(body)', 'segment announcement: body is not JSON', async () => '{"version": 1, "dataspace": '],
    ['an unknown field', 'colour', 'segment announcement: unknown field "colour"', async () => JSON.stringify({ ...JSON.parse(await announcement('bad-field')), colour: 'red' })],
    ['a bad identifier', 'segmentId', 'segment announcement: segmentId "bad/id" contains a character "/"', async () => JSON.stringify({ ...JSON.parse(await announcement('bad-id')), segmentId: 'bad/id' })],
  ])('%s: nine stored, exactly that record reported failed, its log line names %s', async (name, field, message, malformed) => {
    const ids = Array.from({ length: 10 }, (_, i) => `batch-${name.replaceAll(' ', '-')}-${i}`);
    const bodies = await Promise.all(ids.map(async (id, i) => (i === 4 ? malformed() : announcement(id, 1000 + i))));
    const event = sqsEvent(bodies);
    const bad = event.Records[4]!;
    const context = lambdaContext('upload');
    const validations = vi.spyOn(segmentAnnouncementSchema, 'safeParse');
    const { result, lines } = await withLogs(() => handlers.upload(event, context));
    const validated = validations.mock.calls.length;
    validations.mockRestore();
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: bad.messageId }] });
    // Each body is validated once (the bad JSON one is refused before its validation), not again by uploadSegment.
    expect(validated).toBe(name === 'bad JSON' ? 9 : 10);
    for (const [i, id] of ids.entries()) expect(await isStored(id)).toBe(i !== 4);
    expect(lines.filter((l) => l.message === 'segment stored')).toHaveLength(9);
    const failed = lines.filter((l) => l.level === 'ERROR');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ messageId: bad.messageId, errorName: 'InvalidMessageError', field, function_request_id: context.awsRequestId });
    expect(failed[0]?.errorMessage).toContain(message);
  });
});

describe("fetch: middy's deadline signal", () => {
  it('with less time left than the margin, the restore stops and removes what it wrote before the handler answers', async () => {
    await handlers.upload(sqsEvent([await announcement('deadline', 8 * 1024 * 1024)]), lambdaContext('upload'));
    const event = { dataspace: 'hd', segmentId: 'deadline', destination: `file://${join(restoreRoot, 'deadline')}` };
    const started = Date.now();
    const err = await invokeFetch(event, DEADLINE_MARGIN_MS - 1_000).catch((e: unknown) => e);
    // The restore's own error (it stopped on the signal), not middy's TimeoutError: the handler finished first.
    expect(err).toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(DEADLINE_MARGIN_MS - 1_000);
    expect(await restoreEntries('deadline')).toEqual([]);
    // With time to spare the same restore completes.
    await expect(invokeFetch(event, DEADLINE_MARGIN_MS + 60_000)).resolves.toMatchObject({ bytesWritten: 8 * 1024 * 1024 });
    expect(await restoreEntries('deadline')).toEqual(['deadline']);
  });
});

describe('`bucket-storage invoke fetch` (a child process, with the local Lambda context)', () => {
  const run = promisify(execFile);
  async function invokeCli(event: unknown): Promise<{ code: number; stdout: string; stderr: string }> {
    const file = join(sourceRoot, `event-${randomUUID()}.json`);
    await writeFile(file, JSON.stringify(event));
    return run(process.execPath, ['bin/bucket-storage.mjs', 'invoke', 'fetch', '--event', file], { env: process.env })
      .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }))
      .catch((err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }));
  }

  it('answers a restore, logs it with the request context, and exits (no timer left running)', async () => {
    const out = await invokeCli({ dataspace: 'hd', segmentId: 'ctx-1', destination: `file://${join(restoreRoot, 'cli')}` });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ bytesWritten: 10_000 });
    expect(out.stderr).toMatch(/"message": "segment restored"/);
    expect(out.stderr).toMatch(/"function_request_id": "[0-9a-f-]{36}"/);
  });

  it('a malformed invocation fails with the InvalidMessageError naming the field', async () => {
    const out = await invokeCli({ dataspace: 'hd', segmentId: 'ctx-1' });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('InvalidMessageError: fetch invocation: destination is required');
  });
});
