/**
 * The bucket switch, end to end on the embedded servers: 5 segments to bucket A; switch to B; 5 new segments
 * plus 2 of the old announced again → B holds exactly the 5 new; all 10 restore; deletions of 3 old and 2 new
 * are gone from both buckets, and everything else is intact: foreign objects in both buckets and objects of
 * another prefix sharing bucket A.
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { fetchSegment } from '../src/fetch/index.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { patternBytes, patternStream } from './support/sourceData.ts';

let servers: LocalServers;
let deletions: QueuePair;
let root: string;
let env: Record<string, string>;

const size = (i: number) => 1000 + i * 70_001;
const source = (i: number) => join(root, 'src', `seg-${i}`);

async function runtimeFor(bucket: string): Promise<Runtime> {
  return createRuntime({ ...env, S3_STORAGE_BUCKET: bucket });
}
async function upload(rt: Runtime, i: number) {
  return uploadSegment(rt, { version: 1, dataspace: 'sw', segmentId: `seg-${i}`, source: `file://${source(i)}` });
}
async function keys(rt: Runtime, bucket: string): Promise<string[]> {
  const out = await rt.clients.s3().send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((c) => c.Key ?? '').sort();
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of ['switch-a', 'switch-b', 'switch-state']) servers.createBucket(b);
  deletions = servers.createQueue('switch-deletions');
  root = await mkdtemp(join(tmpdir(), 'bks-switch-'));
  await Promise.all([mkdir(join(root, 'src')), mkdir(join(root, 'out'))]);
  for (let i = 0; i < 10; i++) await pipeline(patternStream(size(i), `sw-${i}`), createWriteStream(source(i)));
  env = {
    ...servers.env(),
    S3_STORAGE_ENCRYPTION_KEY: 'switch-test-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    S3_STORAGE_STATE_BUCKET: 'switch-state',
    S3_STORAGE_SOURCE_ROOT: join(root, 'src'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'out'),
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    // Deletions carried out by the run that marks them (the grace period has its own tests).
    S3_STORAGE_DELETION_DELAY_HOURS: '0',
  };
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('switching to a fresh bucket', () => {
  it('new files go to the new bucket, old ones are not copied, all restore, deletions reach both, nothing foreign is touched', async () => {
    const a = await runtimeFor('switch-a');
    // Foreign objects in both buckets, and another cluster's objects (another prefix) sharing bucket A.
    const s3 = a.clients.s3();
    const foreignA = ['README.txt', 'other-cluster/edb3/bks/sw/seg-0', 'ef26/bks/d/s/extra'];
    for (const k of foreignA) await s3.send(new PutObjectCommand({ Bucket: 'switch-a', Key: k, Body: 'foreign' }));
    await s3.send(new PutObjectCommand({ Bucket: 'switch-b', Key: 'notes/keep-me', Body: 'foreign' }));

    for (let i = 0; i < 5; i++) expect((await upload(a, i)).bucket).toBe('switch-a');
    const aKeys = await keys(a, 'switch-a');

    const b = await runtimeFor('switch-b');
    expect((await b.registry.all()).map((r) => r.bucket)).toEqual(['switch-a', 'switch-b']);
    for (let i = 5; i < 10; i++) expect((await upload(b, i)).outcome).toBe('uploaded');
    for (const i of [1, 3]) expect(await upload(b, i)).toMatchObject({ outcome: 'already-stored', bucket: 'switch-a' });
    const bSegments = (await keys(b, 'switch-b')).filter((k) => k.includes('/bks/'));
    expect(bSegments).toHaveLength(5);
    expect(bSegments.every((k) => /seg-[5-9]$/.test(k))).toBe(true);
    expect(await keys(b, 'switch-a')).toEqual(aKeys);

    for (let i = 0; i < 10; i++) {
      const dest = join(root, 'out', `seg-${i}`);
      const answer = await fetchSegment(b, { dataspace: 'sw', segmentId: `seg-${i}`, destination: `file://${dest}` });
      expect(answer.bucket).toBe(i < 5 ? 'switch-a' : 'switch-b');
      expect((await readFile(dest)).equals(patternBytes(size(i), `sw-${i}`))).toBe(true);
    }

    for (const i of [0, 2, 4, 6, 8]) {
      await b.clients.sqs.send(new SendMessageCommand({ QueueUrl: deletions.url, MessageBody: JSON.stringify({ version: 1, dataspace: 'sw', segmentId: `seg-${i}` }) }));
    }
    const report = await runCleanupOnce(b, { budgetMs: 60_000 });
    expect(report).toMatchObject({ received: 5, completed: 5, left: 0 });
    const remainingA = await keys(b, 'switch-a');
    const remainingB = await keys(b, 'switch-b');
    for (const k of foreignA) expect(remainingA).toContain(k);
    expect(remainingB).toContain('notes/keep-me');
    expect(remainingA.filter((k) => k.includes('/bks/sw/') && !k.startsWith('other-cluster/')).map((k) => k.split('/').pop()).sort()).toEqual(['seg-1', 'seg-3']);
    expect(remainingB.filter((k) => k.includes('/bks/')).map((k) => k.split('/').pop()).sort()).toEqual(['seg-5', 'seg-7', 'seg-9']);

    // `bucket-storage status` shows the registry, the segment objects per bucket and the queue depths.
    // Asynchronously: the embedded server answers from this very process.
    const { stdout: out } = await promisify(execFile)(process.execPath, ['bin/bucket-storage.mjs', 'status', '--json'], { env: { ...process.env, ...env, S3_STORAGE_BUCKET: 'switch-b' }, encoding: 'utf8' });
    const status = JSON.parse(out) as { buckets: { bucket: string; current: boolean; segments: number }[]; deletionsQueue: { visible: number; deadLetter: number } };
    expect(status.buckets).toEqual([
      { bucket: 'switch-a', region: servers.region, current: false, segments: 2, bytes: expect.any(Number) },
      { bucket: 'switch-b', region: servers.region, current: true, segments: 3, bytes: expect.any(Number) },
    ]);
    expect(status.deletionsQueue).toMatchObject({ visible: 0, deadLetter: 0 });
  });
});
