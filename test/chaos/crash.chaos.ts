/**
 * Chaos: `serve` SIGKILLed at random points while it uploads, then restarted, again and again. Afterwards every
 * announced segment is stored once and intact, no incomplete multipart upload is left, no good segment is in the
 * DLQ. Runs against moto_server, which (unlike fauxqs) lists multipart uploads, so leftovers can be counted.
 */
import { CreateBucketCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/core/runtime.ts';
import { fetchSegment } from '../../src/fetch/index.ts';
import { patternBytes, patternStream } from '../support/sourceData.ts';
import { startMoto, type MotoServer } from '../support/motoServer.ts';
import { recordChaos, scaled } from './summary.ts';

const SEGMENTS = scaled(200, 40);
const KILLS = scaled(20, 6);
const MiB = 1024 * 1024;
const sizeOf = (i: number) => (i % 20 === 7 ? 12 * MiB : 10_000 + ((i * 7919) % 400_000));

let moto: MotoServer | undefined;
let endpoint = '';
let dir = '';


beforeAll(async () => {
  moto = await startMoto();
  endpoint = moto.endpoint;
  dir = await mkdtemp(join(tmpdir(), 'bks-crash-'));
  await mkdir(join(dir, 'src'));
  await mkdir(join(dir, 'out'));
});
afterAll(async () => {
  moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('crashes', () => {
  it(`${KILLS} SIGKILLs of serve during a ${SEGMENTS}-segment run: all stored intact, no incomplete uploads, no DLQ entries`, async () => {
    const credentials = { accessKeyId: 'moto', secretAccessKey: 'moto' };
    const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
    const sqs = new SQSClient({ endpoint, region: 'us-east-1', credentials });
    await s3.send(new CreateBucketCommand({ Bucket: 'crash-bucket' }));
    const dlq = await sqs.send(new CreateQueueCommand({ QueueName: 'crash-dlq' }));
    const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
    const queue = await sqs.send(
      new CreateQueueCommand({ QueueName: 'crash-segments', Attributes: { VisibilityTimeout: '3', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: '12' }) } }),
    );
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_SQS: endpoint,
      S3_STORAGE_ENDPOINT_BASE: endpoint,
      S3_STORAGE_PATH_STYLE_ACCESS: 'true',
      // Static keys sign the data bucket's requests only; SQS and the rest use the default chain.
      AWS_ACCESS_KEY_ID: 'moto',
      AWS_SECRET_ACCESS_KEY: 'moto',
      S3_STORAGE_ACCESSKEY: 'moto',
      S3_STORAGE_SECRETKEY: 'moto',
      S3_STORAGE_BUCKET: 'crash-bucket',
      S3_STORAGE_REGION: 'us-east-1',
      S3_STORAGE_ENCRYPTION_KEY: 'crash-test-secret-0123456789abcdefghijklmnopqrstuvwxyz',
      S3_STORAGE_SOURCE_ROOT: join(dir, 'src'),
      S3_STORAGE_RESTORE_ROOT: join(dir, 'out'),
      S3_STORAGE_SEGMENTS_QUEUE_URL: queue.QueueUrl ?? '',
      S3_STORAGE_PART_SIZE_MIB: '5',
      LOG_LEVEL: 'ERROR',
    };
    for (let i = 0; i < SEGMENTS; i++) await pipeline(patternStream(sizeOf(i), `crash-${i}`), createWriteStream(join(dir, 'src', `seg-${i}`)));
    for (let i = 0; i < SEGMENTS; i += 10) {
      const entries = Array.from({ length: Math.min(10, SEGMENTS - i) }, (_, j) => ({
        Id: String(j),
        MessageBody: JSON.stringify({ version: 1, dataspace: 'crash', segmentId: `seg-${i + j}`, source: `file://${join(dir, 'src', `seg-${i + j}`)}` }),
      }));
      await sqs.send(new SendMessageBatchCommand({ QueueUrl: queue.QueueUrl, Entries: entries }));
    }

    const serve = (untilIdle: number) => spawn(process.execPath, ['bin/bucket-storage.mjs', 'serve', '--batch-size', '5', '--retry-delay', '1', '--until-idle', String(untilIdle)], { env, stdio: 'ignore' });
    let seed = 99;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < KILLS; k++) {
      const child = serve(1000);
      await new Promise((r) => setTimeout(r, 1500 + random() * 2500)); // start-up, then a random point of the run
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
    }
    // Restart once more and let the queue drain.
    const last = serve(4);
    await new Promise((r) => last.on('exit', r));

    const runtime = await createRuntime(env);
    const ctx = runtime;
    let losses = 0;
    for (let i = 0; i < SEGMENTS; i++) {
      const dest = join(dir, 'out', `seg-${i}`);
      try {
        await fetchSegment(ctx, { dataspace: 'crash', segmentId: `seg-${i}`, destination: `file://${dest}` });
        if (!(await readFile(dest)).equals(patternBytes(sizeOf(i), `crash-${i}`))) losses++;
      } catch {
        losses++;
      }
      await rm(dest, { force: true });
    }
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'crash-bucket' }));
    const dlqDepth = Number((await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }))).Attributes?.ApproximateNumberOfMessages ?? 0);
    recordChaos({ scenario: `serve SIGKILLed ${KILLS}× during uploads`, faults: { sigkill: KILLS }, retried: 0, segmentsChecked: SEGMENTS, losses, foreignDeletions: 0 });
    expect(losses).toBe(0);
    expect(uploads.Uploads ?? []).toEqual([]);
    expect(dlqDepth).toBe(0);
  });
});
