/**
 * Every entry point searches every registered bucket. A two-bucket registry (an old bucket, then the current
 * one); segments that live only in the old bucket; each entry point run with the current bucket configured
 * must find them there: the three handlers, the CLI's restore, status and serve, and the benches' children.
 * (The demo shows the same through its own switch: test/demo.test.ts checks its "already-stored" line.)
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, resetRuntime, type Runtime } from '../src/core/runtime.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { scheduledEvent, sqsRecord } from '../src/local/lambdaEvents.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { patternBytes, patternStream } from './support/sourceData.ts';

const run = promisify(execFile);
const OLD = 'entry-old';
const CURRENT = 'entry-current';
const SIZE = 150_000;
let servers: LocalServers;
let segments: QueuePair;
let deletions: QueuePair;
let root: string;
let env: Record<string, string>;
let current: Runtime;

const source = (id: string) => join(root, 'src', id);
const keyOf = (id: string) => formatSegmentKey('', { dataspace: 'bench', segmentId: id });
const announcement = (id: string) => ({ version: 1 as const, dataspace: 'bench', segmentId: id, source: `file://${source(id)}` });

async function keysIn(bucket: string): Promise<string[]> {
  const out = await current.clients.s3().send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((c) => c.Key ?? '');
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of [OLD, CURRENT, 'entry-state']) servers.createBucket(b);
  segments = servers.createQueue('entry-segments');
  deletions = servers.createQueue('entry-deletions');
  root = await mkdtemp(join(tmpdir(), 'bks-entry-'));
  await mkdir(join(root, 'src'));
  await mkdir(join(root, 'out'));
  env = {
    ...servers.env(),
    S3_STORAGE_ENCRYPTION_KEY: 'entry-points-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ',
    S3_STORAGE_STATE_BUCKET: 'entry-state',
    S3_STORAGE_SOURCE_ROOT: join(root, 'src'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'out'),
    S3_STORAGE_SEGMENTS_QUEUE_URL: segments.url,
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    // Deletions carried out by the run that marks them (the grace period has its own tests).
    S3_STORAGE_DELETION_DELAY_HOURS: '0',
    LOG_LEVEL: 'ERROR',
  };
  // The history: segments stored while the old bucket was current, then the switch.
  const old = await createRuntime({ ...env, S3_STORAGE_BUCKET: OLD });
  for (const id of ['seg-old', 'seg-old-deleted', 'seg-old-bench']) {
    await pipeline(patternStream(SIZE, id), createWriteStream(source(id)));
    expect(await uploadSegment(old, announcement(id))).toMatchObject({ outcome: 'uploaded', bucket: OLD });
  }
  env = { ...env, S3_STORAGE_BUCKET: CURRENT };
  current = await createRuntime(env);
  expect((await current.registry.all()).map((r) => r.bucket)).toEqual([OLD, CURRENT]);
  // A foreign object in the old bucket that no entry point may touch.
  await current.clients.s3().send(new PutObjectCommand({ Bucket: OLD, Key: 'notes/keep-me', Body: 'x' }));
  Object.assign(process.env, env);
  resetRuntime();
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

const context = (name: string): Context => lambdaContext(name, 120_000);

describe('with a two-bucket registry, a segment only in the old bucket is found by', () => {
  it('the upload handler (acknowledged as already stored, nothing written to the current bucket)', async () => {
    const { handler } = await import('../functions/upload.ts');
    const answer = await handler({ Records: [sqsRecord({ messageId: 'm-1', body: JSON.stringify(announcement('seg-old')) }, segments.url, servers.region)] }, context('upload'));
    expect(answer).toEqual({ batchItemFailures: [] });
    expect(await keysIn(CURRENT)).toEqual([]);
  });

  it('the fetch handler', async () => {
    const { handler } = await import('../functions/fetch.ts');
    const answer = await handler({ dataspace: 'bench', segmentId: 'seg-old', destination: `file://${join(root, 'out', 'by-fetch')}` }, context('fetch'));
    expect(answer).toMatchObject({ bucket: OLD, size: SIZE });
    expect((await readFile(join(root, 'out', 'by-fetch'))).equals(patternBytes(SIZE, 'seg-old'))).toBe(true);
  });

  it('the cleanup handler (deletes from the old bucket, nothing else)', async () => {
    await current.clients.sqs.send(new SendMessageCommand({ QueueUrl: deletions.url, MessageBody: JSON.stringify({ version: 1, dataspace: 'bench', segmentId: 'seg-old-deleted' }) }));
    const { handler } = await import('../functions/cleanup.ts');
    const report = await handler(scheduledEvent(servers.region), context('cleanup'));
    expect(report).toMatchObject({ received: 1, completed: 1 });
    expect((await keysIn(OLD)).sort()).toEqual([keyOf('seg-old'), keyOf('seg-old-bench'), 'notes/keep-me'].sort());
  });

  it('bucket-storage restore', async () => {
    const stdout = new PassThrough();
    const code = await main(['restore', '--dataspace', 'bench', '--segment', 'seg-old', '--to', join(root, 'out', 'by-cli')], { env, stdout, stderr: new PassThrough() });
    expect(code).toBe(0);
    expect(JSON.parse(String(stdout.read()))).toMatchObject({ bucket: OLD, size: SIZE });
  });

  it('bucket-storage status', async () => {
    const stdout = new PassThrough();
    expect(await main(['status', '--json'], { env, stdout, stderr: new PassThrough() })).toBe(0);
    const status = JSON.parse(String(stdout.read())) as { buckets: { bucket: string; current: boolean; segments: number }[] };
    expect(status.buckets).toEqual([
      { bucket: OLD, region: servers.region, current: false, segments: 2, bytes: expect.any(Number) },
      { bucket: CURRENT, region: servers.region, current: true, segments: 0, bytes: 0 },
    ]);
  });

  it('bucket-storage serve (the announcement is acknowledged, not copied)', async () => {
    await current.clients.sqs.send(new SendMessageCommand({ QueueUrl: segments.url, MessageBody: JSON.stringify(announcement('seg-old')) }));
    const stdout = new PassThrough();
    expect(await main(['serve', '--until-idle', '1'], { env, stdout, stderr: new PassThrough() })).toBe(0);
    expect(JSON.parse(String(stdout.read()))).toEqual({ received: 1, failed: 0 });
    expect(await keysIn(CURRENT)).toEqual([]);
  });

  it("the benches' upload and restore children", async () => {
    const childEnv = { ...process.env, ...env };
    const up = await run(process.execPath, ['--import', 'tsx', 'bench/support/uploadChild.ts', source('seg-old-bench'), 'seg-old-bench'], { env: childEnv });
    expect(JSON.parse(up.stdout.trim().split('\n').pop() ?? '')).toMatchObject({ result: { outcome: 'already-stored', bucket: OLD } });
    const down = await run(process.execPath, ['--import', 'tsx', 'bench/support/restoreChild.ts', 'bench', 'seg-old-bench', `file://${join(root, 'out', 'by-bench')}`, '1'], { env: childEnv });
    expect(JSON.parse(down.stdout.trim().split('\n').pop() ?? '')).toMatchObject({ answer: { bucket: OLD, size: SIZE } });
    expect(await keysIn(CURRENT)).toEqual([]);
  });
});
