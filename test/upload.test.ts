/**
 * The upload pipeline on the embedded servers: the SQS handler's partial batch failures, serve's redrive to
 * the DLQ, idempotency, bad input, ephemeral-disk verification, SSE-KMS at the request level, and large
 * segments decrypting byte-exact.
 */
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BucketStorageError, IntegrityError, InvalidMessageError, LocationError, PathOutsideRootError, StorageError } from '../src/core/errors.ts';
import { decodeObjectMetadata } from '../src/core/objectMetadata.ts';
import { parseWith, segmentAnnouncementSchema, type SegmentAnnouncement } from '../src/core/messages.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { createDecryptStream } from '../src/core/format/index.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { sqsRecord } from '../src/local/lambdaEvents.ts';
import { serveQueue } from '../src/local/serve.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { patternSha256, patternStream } from './support/sourceData.ts';

const SECRET = 'upload-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMN';
const BUCKET = 'upload-test';
let servers: LocalServers;
let queue: QueuePair;
let root: string;
let runtime: Runtime;
let baseEnv: Record<string, string>;

async function writeSource(name: string, size: number, seed = name): Promise<{ path: string; sha256: string }> {
  const path = join(root, name);
  await pipeline(patternStream(size, seed), createWriteStream(path));
  return { path, sha256: await patternSha256(size, seed) };
}

function announcement(segmentId: string, path: string, extra: Partial<SegmentAnnouncement> = {}): SegmentAnnouncement {
  return { version: 1, dataspace: 'up', segmentId, source: `file://${path}`, ...extra };
}

function sqsEvent(bodies: string[]): SQSEvent {
  return { Records: bodies.map((body) => sqsRecord({ messageId: randomUUID(), body, receiptHandle: 'r' }, queue.url, servers.region)) };
}

async function objectBytes(rt: Runtime, key: string): Promise<Buffer> {
  const body = await rt.store.get({ bucket: BUCKET, region: servers.region }, key);
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket(BUCKET);
  queue = servers.createQueue('segments', { maxReceiveCount: 2, visibilityTimeoutSeconds: 30 });
  root = await mkdtemp(join(tmpdir(), 'bks-upload-'));
  baseEnv = {
    ...servers.env(),
    S3_STORAGE_BUCKET: BUCKET,
    S3_STORAGE_ENCRYPTION_KEY: SECRET,
    S3_STORAGE_SOURCE_ROOT: root,
    S3_STORAGE_SEGMENTS_QUEUE_URL: queue.url,
  };
  // The handler builds its runtime from process.env at its cold start.
  Object.assign(process.env, baseEnv);
  runtime = await createRuntime(baseEnv);
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('upload handler (SQS partial batch failures)', () => {
  it('a batch of 10 with 3 bad records stores 7 objects and reports exactly the 3 message ids', async () => {
    const { handler } = await import('../functions/upload.ts');
    const bodies: string[] = [];
    for (let i = 0; i < 7; i++) {
      const src = await writeSource(`batch-${i}`, 1000 + i * 50_000);
      bodies.push(JSON.stringify(announcement(`batch-${i}`, src.path, { sha256: src.sha256 })));
    }
    bodies.push('{not json');
    bodies.push(JSON.stringify({ ...announcement('batch-x', join(root, 'batch-0')), colour: 'red' }));
    bodies.push(JSON.stringify(announcement('batch-y', join(root, 'does-not-exist'))));
    const event = sqsEvent(bodies);
    const answer = await handler(event, lambdaContext('upload'));
    expect(answer.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(event.Records.slice(7).map((r) => r.messageId).sort());
    for (let i = 0; i < 7; i++) {
      const info = await runtime.store.head({ bucket: BUCKET, region: servers.region }, formatSegmentKey('', { dataspace: 'up', segmentId: `batch-${i}` }));
      expect(info).toBeDefined();
      expect(decodeObjectMetadata(info!.metadata)?.plaintextSize).toBe(1000 + i * 50_000);
    }
  });

  it('through serve: the 3 bad records end in the DLQ after maxReceiveCount receives, the 7 good are not redelivered', async () => {
    const { handler } = await import('../functions/upload.ts');
    const sqs = runtime.clients.sqs;
    for (let i = 0; i < 7; i++) {
      const src = await writeSource(`serve-${i}`, 2000 + i);
      await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: JSON.stringify(announcement(`serve-${i}`, src.path)) }));
    }
    for (const body of ['{oops', JSON.stringify({ version: 1, dataspace: '../etc', segmentId: 's', source: 'file:///x' }), JSON.stringify(announcement('serve-missing', join(root, 'nope')))]) {
      await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body }));
    }
    let handled = 0;
    const totals = await serveQueue({ sqs, queueUrl: queue.url, region: servers.region, handler, retryDelaySeconds: 0, stopWhenIdleFor: 3, onBatch: (n) => (handled += n) });
    expect(totals.received - totals.failed).toBe(7);
    // Each bad record was received maxReceiveCount (2) times, then redriven: 7 + 3 × 2 receives in all.
    expect(totals.received).toBe(13);
    const dlq = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    expect(dlq.Messages?.length).toBe(3);
    const left = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
    expect(left.Attributes?.ApproximateNumberOfMessages).toBe('0');
    expect(left.Attributes?.ApproximateNumberOfMessagesNotVisible).toBe('0');
    expect(handled).toBe(13);
  });
});

describe('uploadSegment', () => {
  it('a 300 MiB segment uploads multipart and decrypts byte-exact with the codec', async () => {
    const size = 300 * 1024 * 1024;
    const src = await writeSource('big', size);
    const parts: string[] = [];
    runtime.clients.s3().middlewareStack.add((next, c) => async (args) => (parts.push(c.commandName ?? ''), next(args)), { step: 'initialize', name: 'countBig' });
    const result = await uploadSegment(runtime, announcement('big', src.path, { size, sha256: src.sha256 }));
    runtime.clients.s3().middlewareStack.remove('countBig');
    expect(result).toMatchObject({ outcome: 'uploaded', size, sha256: src.sha256 });
    expect(parts.filter((p) => p === 'UploadPartCommand').length).toBeGreaterThan(30);
    expect(parts).toContain('CompleteMultipartUploadCommand');
    const body = await runtime.store.get({ bucket: BUCKET, region: servers.region }, result.key);
    const hash = createHash('sha256');
    await pipeline(body, createDecryptStream({ keyRing: runtime.keyRing, identity: { dataspace: 'up', segmentId: 'big' }, plaintextSize: size }), new Writable({ write: (c: Buffer, _e, done) => (hash.update(c), done()) }));
    expect(hash.digest('hex')).toBe(src.sha256);
    await rm(src.path);
  });

  it('with encryption off the object equals the source and carries its SHA-256', async () => {
    const off = await createRuntime({ ...baseEnv, S3_STORAGE_ENCRYPTION_KEY: 'off' });
    const src = await writeSource('plain', 3 * 1024 * 1024 + 5);
    const result = await uploadSegment(off, announcement('plain', src.path));
    const stored = await objectBytes(off, result.key);
    expect(stored.equals(await readFile(src.path))).toBe(true);
    const info = await off.store.head({ bucket: BUCKET, region: servers.region }, result.key);
    expect(decodeObjectMetadata(info!.metadata)).toMatchObject({ format: 'plain', sha256: src.sha256 });
  });

  it('with a KMS key ARN the write requests carry SSE-KMS with the key and the bucket key', async () => {
    const arn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const kms = await createRuntime({ ...baseEnv, S3_STORAGE_KMS_KEY_ARN: arn, S3_STORAGE_PART_SIZE_MIB: '5' });
    const seen: Record<string, unknown>[] = [];
    kms.clients.s3().middlewareStack.add(
      (next, c) => async (args) => {
        if (c.commandName === 'PutObjectCommand' || c.commandName === 'CreateMultipartUploadCommand') seen.push({ command: c.commandName, ...(args.input as Record<string, unknown>) });
        return next(args);
      },
      { step: 'initialize', name: 'recordSse' },
    );
    for (const [name, size] of [['kms-small', 1000], ['kms-multi', 12 * 1024 * 1024]] as const) {
      const src = await writeSource(name, size);
      await uploadSegment(kms, announcement(name, src.path));
    }
    expect(seen.map((s) => s.command).sort()).toEqual(['CreateMultipartUploadCommand', 'PutObjectCommand']);
    for (const s of seen) expect(s).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: arn, BucketKeyEnabled: true });
    for (const s of seen) expect(s.ContentMD5).toBeUndefined();
  });

  it('a redelivered announcement of a stored segment does no second upload (bks-mac: a HEAD; without it: HEAD and GET)', async () => {
    for (const [name, announced] of [['again', true], ['again-no-sha', false]] as const) {
      const src = await writeSource(name, 70_000);
      const extra = announced ? { sha256: src.sha256 } : {};
      const first = await uploadSegment(runtime, announcement(name, src.path, extra));
      const writes: string[] = [];
      // The upload's index of pending deletion marks relists them (ListObjectsV2) once it is older than its
      // maximum age, on its own clock: such a listing may fall in this window and is not part of the upload.
      const counted = (name: string | undefined) => name !== 'ListObjectsV2Command';
      runtime.clients.s3().middlewareStack.add((next, c) => async (args) => (counted(c.commandName) && writes.push(c.commandName ?? ''), next(args)), { step: 'initialize', name: 'countAgain' });
      const second = await uploadSegment(runtime, announcement(name, src.path, extra));
      runtime.clients.s3().middlewareStack.remove('countAgain');
      expect(first.outcome).toBe('uploaded');
      expect(second).toMatchObject({ outcome: 'already-stored', sha256: src.sha256 });
      // With an announced sha256 the stored bks-mac answers; without it the object is read and decrypted once.
      expect(writes).toEqual(announced ? ['HeadObjectCommand'] : ['HeadObjectCommand', 'GetObjectCommand']);
    }
  });

  it('USING_EPHEMERAL_DISKS reads the object back and fails the record on a mismatch', async () => {
    const eph = await createRuntime({ ...baseEnv, USING_EPHEMERAL_DISKS: 'true' });
    const src = await writeSource('eph', 5000);
    const ok = await uploadSegment(eph, announcement('eph', src.path));
    expect(ok.verified).toBe(true);
    // Injected mismatch: the read-back HEAD reports one byte less than was sent.
    const lying = {
      ...eph,
      store: {
        get: eph.store.get.bind(eph.store),
        put: eph.store.put.bind(eph.store),
        abortIncompleteUploads: eph.store.abortIncompleteUploads.bind(eph.store),
        head: async (...args: Parameters<typeof eph.store.head>) => {
          const info = await eph.store.head(...args);
          calls++;
          return info && calls > 1 ? { ...info, size: info.size - 1 } : info;
        },
      },
    };
    let calls = 0;
    const src2 = await writeSource('eph2', 5000);
    await expect(uploadSegment(lying, announcement('eph2', src2.path))).rejects.toBeInstanceOf(IntegrityError);
  });
});

describe('bad input: one clear typed error, nothing stored', () => {
  const cases: [string, () => Promise<unknown>, new (...a: never[]) => BucketStorageError, RegExp][] = [];
  it.each([
    ['unknown field', () => ({ ...announcement('u1', '/x'), extra: 1 }), InvalidMessageError, /unknown field "extra"/],
    ['bad identifier', () => announcement('a/b', '/x'), InvalidMessageError, /segmentId/],
    ['missing version', () => ({ dataspace: 'd', segmentId: 's', source: 'file:///x' }), InvalidMessageError, /version/],
  ] as const)('%s', (_name, make, type, message) => {
    // The announcement is parsed where it enters (the upload function's batch parser), before uploadSegment.
    const parse = () => parseWith(segmentAnnouncementSchema, make(), 'segment announcement');
    expect(parse).toThrow(type);
    expect(parse).toThrow(message);
  });
  void cases;

  it('a source outside the root, directly or through a symlink, is refused', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'bks-outside-'));
    await writeFile(join(outside, 'secret'), 'x');
    await symlink(join(outside, 'secret'), join(root, 'link-out'));
    for (const path of [join(outside, 'secret'), join(root, 'link-out'), `${root}/../${outside.split('/').pop()}/secret`]) {
      await expect(uploadSegment(runtime, announcement('out', path))).rejects.toBeInstanceOf(PathOutsideRootError);
    }
    await rm(outside, { recursive: true });
  });

  it('a missing source is a LocationError', async () => {
    await expect(uploadSegment(runtime, announcement('missing', join(root, 'none')))).rejects.toBeInstanceOf(LocationError);
  });

  it('size and sha256 mismatches fail and leave no object', async () => {
    const src = await writeSource('mm', 9 * 1024 * 1024);
    await expect(uploadSegment(runtime, announcement('mm', src.path, { size: 5 }))).rejects.toBeInstanceOf(IntegrityError);
    const wrong = 'a'.repeat(64);
    const small = await createRuntime({ ...baseEnv, S3_STORAGE_PART_SIZE_MIB: '5' });
    await expect(uploadSegment(small, announcement('mm', src.path, { sha256: wrong }))).rejects.toBeInstanceOf(IntegrityError);
    expect(await runtime.store.head({ bucket: BUCKET, region: servers.region }, formatSegmentKey('', { dataspace: 'up', segmentId: 'mm' }))).toBeUndefined();
  });

  it('an unreachable or missing bucket is a StorageError naming the bucket', async () => {
    const src = await writeSource('nb', 100);
    const gone = await createRuntime({ ...baseEnv, S3_STORAGE_BUCKET: 'no-such-bucket' });
    const err = await uploadSegment(gone, announcement('nb', src.path)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toContain('no-such-bucket');
    const down = await createRuntime({ ...baseEnv, S3_STORAGE_ENDPOINT_BASE: 'http://127.0.0.1:9' });
    const err2 = await uploadSegment(down, announcement('nb', src.path)).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(StorageError);
    expect((err2 as Error).message).not.toContain(SECRET);
  }, 120_000);

  it('a source directory is refused', async () => {
    await mkdir(join(root, 'dir'), { recursive: true });
    await expect(uploadSegment(runtime, announcement('dir', join(root, 'dir')))).rejects.toBeInstanceOf(LocationError);
  });
});
