/** Restores that must fail: tampered, truncated or foreign objects, bad input, denied buckets. Nothing is left behind. */
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BucketRegistry } from '../src/core/bucketRegistry.ts';
import {
  AuthenticationError,
  IntegrityError,
  InvalidMessageError,
  InvalidRangeError,
  LocationError,
  PathOutsideRootError,
  SegmentNotFoundError,
  StorageError,
  TruncatedError,
  UnknownKeyIdError,
} from '../src/core/errors.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import { fetchInvocationSchema, parseWith } from '../src/core/messages.ts';
import type { Runtime } from '../src/core/runtime.ts';
import type { BucketRef, S3Store } from '../src/core/s3Store.ts';
import { fetchSegment, type FetchRuntime } from '../src/fetch/fetchSegment.ts';
import { countRequests, CURRENT_SECRET, startHarness, type Harness } from './support/fetchHarness.ts';
import { storeSegment } from './support/storeSegment.ts';

const CHUNK_LOG2 = 16;
const CHUNK = 2 ** CHUNK_LOG2;
const MiB = 1024 * 1024;

let h: Harness;
let runtime: Runtime;
beforeAll(async () => {
  h = await startHarness();
  runtime = await h.runtime();
});
afterAll(async () => h.close());

async function readObject(key: string): Promise<{ body: Buffer; metadata: Record<string, string> }> {
  const info = await runtime.store.head(h.bucket, key);
  const chunks: Buffer[] = [];
  for await (const c of await runtime.store.get(h.bucket, key)) chunks.push(c as Buffer);
  return { body: Buffer.concat(chunks), metadata: { ...(info?.metadata ?? {}) } };
}

/** Stores a segment, then replaces its object with `mutate(body)` under the same metadata. */
async function storeThenMutate(segmentId: string, size: number, encrypted: boolean, mutate: (body: Buffer) => Buffer): Promise<string> {
  const key = encrypted ? await deriveKey(CURRENT_SECRET) : undefined;
  const stored = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId }, size, segmentId, { key, chunkLog2: CHUNK_LOG2 });
  const { body, metadata } = await readObject(stored.key);
  await runtime.store.put(h.bucket, stored.key, Readable.from([mutate(body)]), { metadata, partSize: 8 * MiB, queueSize: 2 });
  return stored.key;
}

const flipAt = (offset: number) => (body: Buffer) => {
  const copy = Buffer.from(body);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
};

async function expectNothingLeft(name: string): Promise<void> {
  expect((await h.rootEntries()).filter((n) => n.includes(name))).toEqual([]);
}

/** As the fetch function and the restore CLI do: the invocation is parsed once with its schema, then restored. */
async function restore(ctx: FetchRuntime, input: unknown) {
  return fetchSegment(ctx, parseWith(fetchInvocationSchema, input, 'fetch invocation'));
}

async function restoreToFile(segmentId: string, extra: Record<string, unknown> = {}, ctx: FetchRuntime = runtime) {
  return restore(ctx, { dataspace: 'ds', segmentId, destination: `file://${join(h.root, segmentId)}`, ...extra });
}

describe('objects that fail their checks leave no file', () => {
  it('a flipped bit in a chunk → AuthenticationError at that chunk', async () => {
    await storeThenMutate('tampered', 3 * CHUNK + 7, true, flipAt(48 + 2 * (CHUNK + 16) + 100));
    const err = await restoreToFile('tampered').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err).toMatchObject({ chunkIndex: 2, code: 'AUTHENTICATION_FAILED' });
    await expectNothingLeft('tampered');
  });

  it('a range whose chunk is tampered → AuthenticationError, no file', async () => {
    await storeThenMutate('tampered-range', 3 * CHUNK + 7, true, flipAt(48 + CHUNK + 16 + 5));
    await expect(restoreToFile('tampered-range', { range: { start: CHUNK + 1, end: CHUNK + 10 } })).rejects.toBeInstanceOf(AuthenticationError);
    await expectNothingLeft('tampered-range');
  });

  it.each([
    ['mid-chunk', 10],
    ['at a chunk boundary', CHUNK - 1 + 16 + 1],
  ])('an object truncated %s → TruncatedError', async (_what, cut) => {
    const name = `truncated-${cut}`;
    await storeThenMutate(name, 2 * CHUNK + CHUNK - 1, true, (b) => b.subarray(0, b.length - cut));
    await expect(restoreToFile(name)).rejects.toBeInstanceOf(TruncatedError);
    await expectNothingLeft(name);
  });

  it.each([true, false])('an object cut short after its HEAD (encrypted: %s) → TruncatedError from the stream checks', async (encrypted) => {
    const name = `cut-after-head-${encrypted}`;
    const key = await storeThenMutate(name, 2 * CHUNK + 100, encrypted, (b) => b);
    const full = await runtime.store.head(h.bucket, key);
    // The HEAD reports the whole object; the GET then returns it without its last 40 bytes (a changed object or a
    // misbehaving server): the decryptor's plaintextSize, or the size meter for plain objects, catches it.
    const lying: S3Store = Object.assign(Object.create(runtime.store) as S3Store, {
      async get() {
        const { body } = await readObject(key);
        return Readable.from([body.subarray(0, (full?.size ?? 0) - 40)]);
      },
    });
    await expect(restoreToFile(name, {}, { ...runtime, store: lying })).rejects.toBeInstanceOf(TruncatedError);
    await expectNothingLeft(name);
  });

  it('a plain object with a changed byte → IntegrityError on sha256', async () => {
    await storeThenMutate('plain-tampered', 5000, false, flipAt(4000));
    const err = await restoreToFile('plain-tampered').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'sha256' });
    await expectNothingLeft('plain-tampered');
  });

  it('a truncated plain object → TruncatedError', async () => {
    await storeThenMutate('plain-truncated', 5000, false, (b) => b.subarray(0, 4999));
    await expect(restoreToFile('plain-truncated')).rejects.toBeInstanceOf(TruncatedError);
    await expectNothingLeft('plain-truncated');
  });

  it('an object written with a key the ring does not hold → UnknownKeyIdError', async () => {
    const key = await deriveKey('a-key-nobody-configured-0123456789abcdefghijklmnopqrstuvwxyz012345');
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'foreign-key' }, 100, 'x', { key, chunkLog2: CHUNK_LOG2 });
    await expect(restoreToFile('foreign-key')).rejects.toBeInstanceOf(UnknownKeyIdError);
    await expectNothingLeft('foreign-key');
  });

  it('an object copied under another segment name → AuthenticationError', async () => {
    const key = await deriveKey(CURRENT_SECRET);
    const a = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'original' }, 1000, 'o', { key, chunkLog2: CHUNK_LOG2 });
    const b = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'copy-target' }, 1000, 'c', { key, chunkLog2: CHUNK_LOG2 });
    const { body, metadata } = await readObject(a.key);
    await runtime.store.put(h.bucket, b.key, Readable.from([body]), { metadata, partSize: 8 * MiB, queueSize: 2 });
    await expect(restoreToFile('copy-target')).rejects.toBeInstanceOf(AuthenticationError);
    await expectNothingLeft('copy-target');
  });

  it('a tampered object restored to s3:// aborts its multipart upload: no object, no upload left', async () => {
    const size = 20 * MiB;
    await storeThenMutate('tampered-s3', size, true, (b) => flipAt(b.length - 100)(b));
    // s3:// destinations are written with the function's role (never the data buckets' static keys).
    const client = runtime.clients.s3AsRole();
    const counter = countRequests(client);
    const uploadIds: string[] = [];
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const out = result.output;
        if (typeof out === 'object' && out !== null && 'UploadId' in out && typeof out.UploadId === 'string') uploadIds.push(out.UploadId);
        return result;
      },
      { step: 'initialize', name: 'captureUploadIds' },
    );
    const destination = `s3://${h.bucket.bucket}/restored/tampered-s3`;
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'tampered-s3', destination })).rejects.toBeInstanceOf(AuthenticationError);
    client.middlewareStack.remove('captureUploadIds');
    const commands = counter.requests.map((r) => r.command);
    expect(commands).toContain('CreateMultipartUploadCommand');
    expect(commands).toContain('AbortMultipartUploadCommand');
    expect(commands).not.toContain('CompleteMultipartUploadCommand');
    expect(await runtime.store.head(h.bucket, 'restored/tampered-s3')).toBeUndefined();
    expect(uploadIds).toHaveLength(1);
    await expect(
      client.send(new UploadPartCommand({ Bucket: h.bucket.bucket, Key: 'restored/tampered-s3', UploadId: uploadIds[0], PartNumber: 99, Body: 'x' })),
    ).rejects.toMatchObject({ name: 'NoSuchUpload' });
  });
});

describe('a restore stopped by its signal (Lambda deadline)', () => {
  it('rejects and leaves no file, whole or in parallel parts', async () => {
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'stopped' }, 3 * CHUNK, 'stopped', { key: await deriveKey(CURRENT_SECRET), chunkLog2: CHUNK_LOG2 });
    for (const concurrency of [1, 2]) {
      const controller = new AbortController();
      const restore = fetchSegment(runtime, { dataspace: 'ds', segmentId: 'stopped', destination: `file://${join(h.root, 'stopped')}` }, {
        signal: controller.signal,
        concurrency,
        partSize: CHUNK,
        onProgress: () => controller.abort(new Error('deadline')),
      });
      await expect(restore).rejects.toThrow();
      await expectNothingLeft('stopped');
    }
  });
});

describe('bad input', () => {
  it('an unknown segment → SegmentNotFoundError naming every bucket searched', async () => {
    h.servers.createBucket('fetch-previous');
    const registry: BucketRegistry = { current: h.bucket, searchOrder: async () => [h.bucket, { bucket: 'fetch-previous', region: h.bucket.region }], all: async () => [h.bucket, { bucket: 'fetch-previous', region: h.bucket.region }] };
    const err = await restoreToFile('never-stored', {}, { ...runtime, registry: registry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SegmentNotFoundError);
    expect(err).toMatchObject({ code: 'SEGMENT_NOT_FOUND', bucketsSearched: ['s3://fetch-test (us-east-1)', 's3://fetch-previous (us-east-1)'] });
    expect((err as Error).message).toMatch(/fetch-test.*fetch-previous/);
    await expectNothingLeft('never-stored');
  });

  it('a segment in a previous bucket is found there, after the current one', async () => {
    h.servers.createBucket('fetch-older');
    const older = { bucket: 'fetch-older', region: h.bucket.region };
    await storeSegment(runtime.store, older, { dataspace: 'ds', segmentId: 'in-older' }, 777, 'older', { key: await deriveKey(CURRENT_SECRET) });
    const registry: BucketRegistry = { current: h.bucket, searchOrder: async () => [h.bucket, older], all: async () => [h.bucket, older] };
    const answer = await restoreToFile('in-older', {}, { ...runtime, registry: registry });
    expect(answer).toMatchObject({ bucket: 'fetch-older', size: 777, bytesWritten: 777 });
  });

  it.each([
    ['dataspace', { dataspace: '../etc', segmentId: 's' }],
    ['segmentId', { dataspace: 'ds', segmentId: 'a/b' }],
    ['segmentId', { dataspace: 'ds', segmentId: '' }],
    ['dataspace', { dataspace: 'x'.repeat(200), segmentId: 's' }],
  ])('an invalid identifier → InvalidMessageError naming %s, no request', async (field, ids) => {
    const counter = countRequests(runtime.clients.s3());
    const err = await restore(runtime, { ...ids, destination: `file://${join(h.root, 'bad-id')}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidMessageError);
    expect(err).toMatchObject({ field });
    expect(counter.requests).toEqual([]);
  });

  it('a range past the end → InvalidRangeError; a reversed range → InvalidMessageError on range.end', async () => {
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'ranged' }, 1000, 'r', { key: await deriveKey(CURRENT_SECRET) });
    await expect(restoreToFile('ranged', { range: { start: 900, end: 1000 } })).rejects.toBeInstanceOf(InvalidRangeError);
    await expect(restoreToFile('ranged', { range: { start: 5, end: 4 } })).rejects.toMatchObject({ name: 'InvalidMessageError', field: 'range.end' });
    await expect(restoreToFile('ranged', { range: { start: -1, end: 4 } })).rejects.toMatchObject({ name: 'InvalidMessageError', field: 'range.start' });
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'empty' }, 0, 'e', { key: undefined });
    await expect(restoreToFile('empty', { range: { start: 0, end: 0 } })).rejects.toBeInstanceOf(InvalidRangeError);
    await expectNothingLeft('ranged');
    await expectNothingLeft('empty');
  });

  it('a destination outside the restore root, directly or through a symlink → PathOutsideRootError, no request', async () => {
    const outside = join(tmpdir(), `bks-outside-${process.pid}`);
    await mkdir(outside, { recursive: true });
    await symlink(outside, join(h.root, 'escape'));
    const counter = countRequests(runtime.clients.s3());
    for (const destination of [`file://${outside}/x`, `file://${h.root}/../x`, `file://${h.root}/escape/x`]) {
      await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'ranged', destination })).rejects.toBeInstanceOf(PathOutsideRootError);
    }
    expect(counter.requests).toEqual([]);
  });

  it('a destination that cannot be written → LocationError, nothing left', async () => {
    await writeFile(join(h.root, 'a-file'), 'x');
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'ranged', destination: `file://${h.root}/a-file/x` })).rejects.toBeInstanceOf(LocationError);
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'ranged', destination: `file://${h.root}/no-such-dir/x` })).rejects.toBeInstanceOf(LocationError);
    await mkdir(join(h.root, 'a-dir'));
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'ranged', destination: `file://${h.root}/a-dir` })).rejects.toBeInstanceOf(LocationError);
    expect((await h.rootEntries()).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  describe('a denied bucket', () => {
    const deniedStore = (denied: string): S3Store =>
      Object.assign(Object.create(runtime.store) as S3Store, {
        async head(ref: BucketRef, key: string) {
          if (ref.bucket === denied) throw new StorageError('HeadObject', ref.bucket, key, `HeadObject s3://${ref.bucket}/${key} failed: AccessDenied 403`, { retryable: false });
          return runtime.store.head(ref, key);
        },
      });
    const twoBuckets: BucketRegistry = { current: h?.bucket, searchOrder: async () => [h.bucket, { bucket: 'fetch-denied', region: h.bucket.region }], all: async () => [h.bucket, { bucket: 'fetch-denied', region: h.bucket.region }] };

    it('holding nothing we found elsewhere → StorageError, not "not found"', async () => {
      const ctx = { ...{ ...runtime, registry: twoBuckets }, store: deniedStore('fetch-denied') };
      const err = await restoreToFile('never-stored', {}, ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect(err).not.toBeInstanceOf(SegmentNotFoundError);
      expect(err).toMatchObject({ bucket: 'fetch-denied', code: 'STORAGE_FAILED' });
      await expectNothingLeft('never-stored');
    });

    it('denied current bucket, segment in a later one → restored from there', async () => {
      const registry = { current: h.bucket, searchOrder: async () => [{ bucket: 'fetch-denied', region: h.bucket.region }, h.bucket], all: async () => [{ bucket: 'fetch-denied', region: h.bucket.region }, h.bucket] };
      const ctx = { ...runtime, registry, store: deniedStore('fetch-denied') };
      await expect(restoreToFile('ranged', {}, ctx)).resolves.toMatchObject({ bucket: h.bucket.bucket, size: 1000 });
    });
  });
});
