/**
 * Acceptance 1: an upload, a restore and a cleanup run each emit CloudWatch EMF lines with their metrics, read
 * back and checked here as CloudWatch would parse them (namespace, dimension sets, units, values). The
 * announcement age equals now minus the record's SentTimestamp within a second. S3 answers the first two HEADs
 * with 503 SlowDown (a fault proxy): the SDK retries them, and the invocation's SdkRetries/SdkThrottles say so.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FetchInvocation } from '../src/core/messages.ts';
import { getRuntime, resetRuntime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { scheduledEvent, sqsRecord } from '../src/local/lambdaEvents.ts';
import { startFaultProxy, type FaultProxy } from './support/faultProxy.ts';
import { capturedOutput } from './support/capturedOutput.ts';
import { patternStream } from './support/sourceData.ts';

const BUCKET = 'metrics-test';
let servers: LocalServers;
let proxy: FaultProxy;
let deletions: QueuePair;
let root: string;
let handlers: { upload: typeof import('../functions/upload.ts').handler; fetch: typeof import('../functions/fetch.ts').handler; cleanup: typeof import('../functions/cleanup.ts').handler };

/** One EMF line as CloudWatch reads it: the directive under `_aws`, dimensions and metric values at the top. */
interface Emf {
  readonly _aws: { readonly Timestamp: number; readonly CloudWatchMetrics: readonly { readonly Namespace: string; readonly Dimensions: readonly string[][]; readonly Metrics: readonly { Name: string; Unit: string }[] }[] };
  readonly [key: string]: unknown;
}

/** Runs `invoke` and returns the EMF lines written meanwhile (Powertools Metrics writes them to stdout). */
async function emfOf(invoke: () => Promise<unknown>): Promise<Emf[]> {
  const output = await capturedOutput(invoke);
  // Powertools warns on the console when a dimension is added twice: none of ours may.
  expect(output).not.toContain('has already been added');
  return output.split('\n').filter((l) => l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as Emf);
}

/** The line whose dimensions are exactly `dims` (and the `service` default); its metric units by name. */
function lineWith(lines: readonly Emf[], dims: Record<string, string>): { line: Emf; units: Record<string, string> } {
  const line = lines.find((l) => Object.entries(dims).every(([k, v]) => l[k] === v) && l._aws.CloudWatchMetrics[0]?.Dimensions[0]?.length === Object.keys(dims).length + 1);
  if (line === undefined) throw new Error(`no EMF line with ${JSON.stringify(dims)} among ${JSON.stringify(lines)}`);
  const directive = line._aws.CloudWatchMetrics[0]!;
  expect(directive.Namespace).toBe('BucketStorage');
  expect(directive.Dimensions[0]!.sort()).toEqual(['service', ...Object.keys(dims)].sort());
  expect(line.service).toBe('bucket-storage');
  return { line, units: Object.fromEntries(directive.Metrics.map((m) => [m.Name, m.Unit])) };
}

async function writeSource(id: string, size: number): Promise<string> {
  const path = join(root, 'src', id);
  await pipeline(patternStream(size, id), createWriteStream(path));
  return `file://${path}`;
}

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket(BUCKET);
  deletions = servers.createQueue('metrics-deletions');
  // 503 SlowDown for the first two HEADs: the SDK's retries absorb them.
  proxy = await startFaultProxy({ target: servers.endpoint, rules: [{ match: (method) => method === 'HEAD', kinds: ['slowDown503'], rate: 1 }], maxFaults: 2 });
  root = await mkdtemp(join(tmpdir(), 'bks-metrics-'));
  const { mkdir } = await import('node:fs/promises');
  await Promise.all([mkdir(join(root, 'src')), mkdir(join(root, 'out'))]);
  Object.assign(process.env, {
    ...servers.env(),
    S3_STORAGE_ENDPOINT_BASE: proxy.endpoint,
    S3_STORAGE_BUCKET: BUCKET,
    S3_STORAGE_ENCRYPTION_KEY: 'metrics-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ',
    S3_STORAGE_SOURCE_ROOT: join(root, 'src'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'out'),
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    // No grace period: the run that marks a deletion also carries it out (the delay is tested in cleanup.test.ts).
    S3_STORAGE_DELETION_DELAY_HOURS: '0',
    LOG_FORMAT: 'json',
  });
  resetRuntime();
  handlers = {
    upload: (await import('../functions/upload.ts')).handler,
    fetch: (await import('../functions/fetch.ts')).handler,
    cleanup: (await import('../functions/cleanup.ts')).handler,
  };
});
afterAll(async () => {
  await proxy?.stop();
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('EMF metrics', () => {
  it('an upload: segments, bytes, seconds, MiB/s and the announcement age per outcome; SDK retries and throttles', async () => {
    const sent = Date.now() - 3_600_000; // an hour: a wrong unit or scale shows by far more than the second allowed
    const record = async (segmentId: string, size: number, source?: string) =>
      sqsRecord({ messageId: randomUUID(), body: JSON.stringify({ version: 1, dataspace: 'm', segmentId, source: source ?? (await writeSource(segmentId, size)) }), attributes: { SentTimestamp: String(sent) } }, 'http://q/segments', servers.region);
    const event: SQSEvent = { Records: [await record('seg-1', 300_000), await record('seg-missing', 0, `file://${join(root, 'src', 'nope')}`)] };
    const lines = await emfOf(() => handlers.upload(event, lambdaContext('upload')));

    const uploaded = lineWith(lines, { function: 'upload', outcome: 'uploaded' });
    expect(uploaded.units).toEqual({ Segments: 'Count', SegmentBytes: 'Bytes', UploadSeconds: 'Seconds', UploadThroughput: 'Megabytes/Second', AnnouncementAge: 'Seconds' });
    expect(uploaded.line).toMatchObject({ Segments: 1, SegmentBytes: 300_000 });
    expect(uploaded.line.UploadSeconds).toBeGreaterThan(0);
    expect(uploaded.line.UploadThroughput).toBeCloseTo(300_000 / 1024 / 1024 / Number(uploaded.line.UploadSeconds), 6);
    // Now minus SentTimestamp, "now" being when the line was written.
    expect(Math.abs(Number(uploaded.line.AnnouncementAge) - (uploaded.line._aws.Timestamp - sent) / 1000)).toBeLessThan(1);

    const failed = lineWith(lines, { function: 'upload', outcome: 'failed' });
    expect(failed.line).toMatchObject({ Segments: 1, errorCode: 'LOCATION_UNAVAILABLE' });
    // Failures are also counted per error code: a second dimension set on the same line.
    expect(failed.line._aws.CloudWatchMetrics[0]!.Dimensions[1]!.sort()).toEqual(['errorCode', 'function', 'outcome', 'service']);

    const sdk = lineWith(lines, { function: 'upload' });
    expect(sdk.units).toEqual({ SdkRequests: 'Count', SdkRetries: 'Count', SdkThrottles: 'Count', SdkRetryDelay: 'Milliseconds' });
    expect(sdk.line.SdkRequests).toBeGreaterThanOrEqual(3);
    expect(sdk.line).toMatchObject({ SdkRetries: 2, SdkThrottles: 2 });
    expect(sdk.line.SdkRetryDelay).toBeGreaterThan(0);
    expect(proxy.counts.slowDown503).toBe(2);

    // Announced again: acknowledged without a copy, still with its age.
    const again = await emfOf(() => handlers.upload({ Records: [event.Records[0]!] }, lambdaContext('upload')));
    expect(lineWith(again, { function: 'upload', outcome: 'already-stored' }).line).toMatchObject({ Segments: 1, SegmentBytes: 300_000, AnnouncementAge: expect.any(Number) });
  });

  it('a restore: bytes, seconds, whole or range; a failure by error class', async () => {
    const invoke = (event: unknown) => handlers.fetch(event as FetchInvocation, lambdaContext('fetch')).catch(() => undefined);
    const whole = await emfOf(() => invoke({ dataspace: 'm', segmentId: 'seg-1', destination: `file://${join(root, 'out', 'whole')}` }));
    const w = lineWith(whole, { function: 'fetch', outcome: 'restored', read: 'whole' });
    expect(w.units).toEqual({ Restores: 'Count', RestoredBytes: 'Bytes', RestoreSeconds: 'Seconds', RestoreThroughput: 'Megabytes/Second' });
    expect(w.line).toMatchObject({ Restores: 1, RestoredBytes: 300_000 });
    expect(w.line.RestoreSeconds).toBeGreaterThan(0);

    const range = await emfOf(() => invoke({ dataspace: 'm', segmentId: 'seg-1', destination: `file://${join(root, 'out', 'range')}`, range: { start: 10, end: 1033 } }));
    expect(lineWith(range, { function: 'fetch', outcome: 'restored', read: 'range' }).line).toMatchObject({ Restores: 1, RestoredBytes: 1024 });

    const missing = await emfOf(() => invoke({ dataspace: 'm', segmentId: 'never-stored', destination: `file://${join(root, 'out', 'x')}` }));
    const failed = lineWith(missing, { function: 'fetch', outcome: 'failed' });
    expect(failed.line).toMatchObject({ Restores: 1, errorClass: 'SegmentNotFoundError' });
    // Counted per function and outcome, and per error class.
    expect(failed.line._aws.CloudWatchMetrics[0]?.Dimensions[1]?.sort()).toEqual(['errorClass', 'function', 'outcome', 'service']);
    const malformed = await emfOf(() => invoke({ dataspace: 'm', segmentId: '../x', destination: 'file:///x' }));
    expect(lineWith(malformed, { function: 'fetch', outcome: 'failed' }).line).toMatchObject({ errorClass: 'InvalidMessageError' });
  });

  it('a cleanup run: deletions marked, done, kept, failed, messages left; the storage used per bucket', async () => {
    const sqs = (await getRuntime()).clients.sqs;
    await sqs.send(new SendMessageCommand({ QueueUrl: deletions.url, MessageBody: JSON.stringify({ version: 1, dataspace: 'm', segmentId: 'seg-1' }) }));
    await sqs.send(new SendMessageCommand({ QueueUrl: deletions.url, MessageBody: 'not json' }));
    const lines = await emfOf(() => handlers.cleanup(scheduledEvent(servers.region), lambdaContext('cleanup', 60_000)));
    const run = lineWith(lines, { function: 'cleanup' });
    expect(run.units).toMatchObject({ DeletionsMarked: 'Count', DeletionsDone: 'Count', DeletionsKept: 'Count', DeletionsFailed: 'Count', MessagesLeft: 'Count', MalformedMessages: 'Count' });
    expect(run.line).toMatchObject({ DeletionsMarked: 1, DeletionsDone: 1, DeletionsKept: 0, DeletionsFailed: 0, MessagesLeft: 0, MalformedMessages: 1 });
    const size = lineWith(lines, { function: 'cleanup', bucket: BUCKET });
    expect(size.units).toEqual({ StoredObjects: 'Count', StoredBytes: 'Bytes' });
    // seg-1 was deleted by this run, before the size was measured: the bucket holds no segment any more.
    expect(size.line).toMatchObject({ StoredObjects: 0, StoredBytes: 0 });
  });
});
