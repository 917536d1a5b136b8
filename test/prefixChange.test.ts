/**
 * Changing S3_STORAGE_OBJECT_KEY_PREFIX starts a fresh virtual bucket (as LogScale treats a new prefix): the
 * registry and the deletion marks live under the prefix, restores and cleanup see only its objects, and the
 * first cold start under the new prefix says so with a warning naming the old registry's location (later cold
 * starts say it as information; `status` lists the other registries too). On moto_server.
 */
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { main } from '../src/cli/main.ts';
import { SegmentNotFoundError } from '../src/core/errors.ts';
import { logger } from '../src/core/logger.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { fetchSegment } from '../src/fetch/index.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';

let moto: MotoServer | undefined;
let s3: S3Client;
let dir = '';
let env: Record<string, string>;

beforeAll(async () => {
  moto = await startMoto();
  const credentials = { accessKeyId: 'moto', secretAccessKey: 'moto' };
  s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
  for (const b of ['prefix-data', 'prefix-state']) await s3.send(new CreateBucketCommand({ Bucket: b }));
  const queue = await new SQSClient({ endpoint: moto.endpoint, region: 'us-east-1', credentials }).send(new CreateQueueCommand({ QueueName: 'prefix-deletions' }));
  dir = await mkdtemp(join(tmpdir(), 'bks-prefix-'));
  env = {
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_SQS: moto.endpoint,
    S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_ACCESSKEY: 'moto',
    S3_STORAGE_SECRETKEY: 'moto',
    S3_STORAGE_BUCKET: 'prefix-data',
    S3_STORAGE_REGION: 'us-east-1',
    S3_STORAGE_ENCRYPTION_KEY: 'off',
    S3_STORAGE_STATE_BUCKET: 'prefix-state',
    S3_STORAGE_DELETIONS_QUEUE_URL: queue.QueueUrl ?? '',
    S3_STORAGE_DELETION_DELAY_HOURS: '0',
    S3_STORAGE_SOURCE_ROOT: dir,
    S3_STORAGE_RESTORE_ROOT: dir,
    LOG_LEVEL: 'CRITICAL',
  };
});
afterAll(async () => {
  moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('changing the object key prefix', () => {
  it('is a fresh virtual bucket: said at cold start with the old registry, old objects neither restored nor deleted', async () => {
    const before = await createRuntime({ ...env, S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-2025' });
    await writeFile(join(dir, 'seg-1'), 'old bytes');
    await uploadSegment(before, { version: 1, dataspace: 'ds', segmentId: 'seg-1', source: `file://${join(dir, 'seg-1')}` });

    const warn = vi.spyOn(logger, 'warn');
    const info = vi.spyOn(logger, 'info');
    const after = await createRuntime({ ...env, S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-2026' });
    const oldRegistry = 's3://prefix-state/cluster-2025/_bucket-storage/registry.json';
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/fresh registry was created for this prefix.*"cluster-2026\/" is a virtual bucket of its own/);
    expect(String(warn.mock.calls[0]?.[0])).toContain(oldRegistry);
    // A later cold start under the same prefix says it as information only.
    warn.mockClear();
    await createRuntime({ ...env, S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-2026' });
    expect(warn).not.toHaveBeenCalled();
    expect(info.mock.calls.map((c) => String(c[0])).filter((m) => m.includes(oldRegistry))).toHaveLength(1);
    warn.mockRestore();
    info.mockRestore();

    // Restores and cleanup under the new prefix do not see the old object.
    const err = await fetchSegment(after, { dataspace: 'ds', segmentId: 'seg-1', destination: `file://${join(dir, 'out')}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SegmentNotFoundError);
    await after.clients.sqs.send(new SendMessageCommand({ QueueUrl: env.S3_STORAGE_DELETIONS_QUEUE_URL, MessageBody: JSON.stringify({ version: 1, dataspace: 'ds', segmentId: 'seg-1' }) }));
    const report = await runCleanupOnce(after, { budgetMs: 60_000, waitTimeSeconds: 1 });
    expect(report).toMatchObject({ marked: 1, marksApplied: 1 });
    const keys = (await s3.send(new ListObjectsV2Command({ Bucket: 'prefix-data' }))).Contents?.map((c) => c.Key) ?? [];
    expect(keys).toEqual(['cluster-2025/236f/bks/ds/seg-1']);

    // `status` names the other registry.
    const stdout = new PassThrough();
    expect(await main(['status', '--json'], { env: { ...env, S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-2026' }, stdout, stderr: new PassThrough() })).toBe(0);
    expect(JSON.parse(String(stdout.read())).otherRegistries).toEqual([oldRegistry]);
  });
});
