/** Restores that must fail: tampered, truncated or foreign objects, bad input, denied buckets. Nothing is left behind. */
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { mkdir, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BucketRegistry } from '../src/core/bucketRegistry.ts';
import {
  AuthenticationError,
  IntegrityError,
  InvalidMessageError,
  InvalidRangeError,
  LocationError,
  MalformedHeaderError,
  PathOutsideRootError,
  PlainObjectRefusedError,
  ProtectedDestinationError,
  SegmentNotFoundError,
  StorageError,
  TruncatedError,
  UnknownKeyIdError,
} from '../src/core/errors.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import { logger } from '../src/core/logger.ts';
import { encodeObjectMetadata } from '../src/core/objectMetadata.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
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
/** Encryption off: plain objects are what uploads write, and are read. */
let offRuntime: Runtime;
beforeAll(async () => {
  h = await startHarness();
  runtime = await h.runtime();
  offRuntime = await h.runtime({ S3_STORAGE_ENCRYPTION_KEY: 'off' });
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
    await expect(restoreToFile(name, {}, { ...(encrypted ? runtime : offRuntime), store: lying })).rejects.toBeInstanceOf(TruncatedError);
    await expectNothingLeft(name);
  });

  it('a plain object with a changed byte → IntegrityError on sha256', async () => {
    await storeThenMutate('plain-tampered', 5000, false, flipAt(4000));
    const err = await restoreToFile('plain-tampered', {}, offRuntime).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'sha256' });
    await expectNothingLeft('plain-tampered');
  });

  it('a truncated plain object → TruncatedError', async () => {
    await storeThenMutate('plain-truncated', 5000, false, (b) => b.subarray(0, 4999));
    await expect(restoreToFile('plain-truncated', {}, offRuntime)).rejects.toBeInstanceOf(TruncatedError);
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
    const restored = { bucket: 'fetch-errors-restored', region: h.bucket.region };
    h.servers.createBucket(restored.bucket);
    const destination = `s3://${restored.bucket}/restored/tampered-s3`;
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'tampered-s3', destination })).rejects.toBeInstanceOf(AuthenticationError);
    client.middlewareStack.remove('captureUploadIds');
    const commands = counter.requests.map((r) => r.command);
    expect(commands).toContain('CreateMultipartUploadCommand');
    expect(commands).toContain('AbortMultipartUploadCommand');
    expect(commands).not.toContain('CompleteMultipartUploadCommand');
    expect(await runtime.store.head(restored, 'restored/tampered-s3')).toBeUndefined();
    expect(uploadIds).toHaveLength(1);
    await expect(
      client.send(new UploadPartCommand({ Bucket: restored.bucket, Key: 'restored/tampered-s3', UploadId: uploadIds[0], PartNumber: 99, Body: 'x' })),
    ).rejects.toMatchObject({ name: 'NoSuchUpload' });
  });
});

describe('plain objects', () => {
  /** Puts the plain bytes of a segment with the given metadata (a substitute, as a bucket writer could). */
  async function putPlain(segmentId: string, bytes: Buffer, metadata: Record<string, string>): Promise<void> {
    await runtime.store.put(h.bucket, formatSegmentKey('', { dataspace: 'ds', segmentId }), Readable.from([bytes]), { metadata, partSize: 8 * MiB, queueSize: 1 });
  }

  it('a substituted plain object without a digest is refused before any GET, whatever the encryption setting', async () => {
    await putPlain('plain-no-digest', Buffer.from('attacker bytes'), { 'bks-format': 'plain', 'bks-size': '14' });
    for (const rt of [runtime, offRuntime]) {
      const counter = countRequests(rt.clients.s3());
      const err = await restoreToFile('plain-no-digest', {}, rt).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MalformedHeaderError);
      expect((err as Error).message).toMatch(/plain \(unencrypted\) object without bks-sha256/);
      expect(counter.requests.map((r) => r.command)).not.toContain('GetObjectCommand');
    }
    await expectNothingLeft('plain-no-digest');
  });

  it('while encryption is on, a plain object is read only when last modified before S3_STORAGE_PLAIN_OBJECTS_BEFORE, and counted', async () => {
    const bytes = Buffer.from('plain bytes written while encryption was off');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await putPlain('plain-on', bytes, encodeObjectMetadata({ format: 'plain', plaintextSize: bytes.length, sha256 }));
    const hour = 3_600_000;
    // No variable: refused before any GET. A cut-off before the object was written (a later substitute): refused.
    for (const rt of [runtime, await h.runtime({ S3_STORAGE_PLAIN_OBJECTS_BEFORE: new Date(Date.now() - hour).toISOString() })]) {
      const counter = countRequests(rt.clients.s3());
      const err = await restoreToFile('plain-on', {}, rt).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PlainObjectRefusedError);
      expect((err as Error).message).toMatch(/S3_STORAGE_PLAIN_OBJECTS_BEFORE/);
      expect(counter.requests.map((r) => r.command)).toEqual(['HeadObjectCommand']);
      await expectNothingLeft('plain-on');
    }
    // A cut-off after it was written (encryption turned on later): read, its digest checked, and counted.
    const allowed = await h.runtime({ S3_STORAGE_PLAIN_OBJECTS_BEFORE: new Date(Date.now() + hour).toISOString() });
    const warn = vi.spyOn(logger, 'warn');
    try {
      await expect(restoreToFile('plain-on', {}, allowed)).resolves.toMatchObject({ sha256, bytesWritten: bytes.length });
      expect(warn).toHaveBeenCalledWith('plain object read while encryption is on', expect.objectContaining({ plainObjectReads: 1, key: formatSegmentKey('', { dataspace: 'ds', segmentId: 'plain-on' }) }));
    } finally {
      warn.mockRestore();
    }
    // With encryption off plain objects are what uploads write: read without the variable.
    await expect(restoreToFile('plain-on', {}, offRuntime)).resolves.toMatchObject({ sha256 });
  });
});

describe('s3:// destinations that would overwrite the pipeline\'s own objects', () => {
  it('are refused before any request: a data bucket (whole, or its prefix), a previous bucket, the state bucket, the staging bucket', async () => {
    for (const bucket of ['fetch-state', 'fetch-old-data', 'fetch-staging']) h.servers.createBucket(bucket);
    const older = { bucket: 'fetch-old-data', region: h.bucket.region };
    const registry: BucketRegistry = { current: h.bucket, searchOrder: async () => [h.bucket, older], all: async () => [older, h.bucket] };
    const whole = { ...(await h.runtime({ S3_STORAGE_STATE_BUCKET: 'fetch-state' })), registry };
    const prefixed = { ...(await h.runtime({ S3_STORAGE_STATE_BUCKET: 'fetch-state', S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-a' })), registry };
    const staged = { ...(await h.runtime({ S3_STORAGE_STAGING_BUCKET: 'fetch-staging' })), registry };
    const refused: [Runtime, string][] = [
      [whole, `s3://${h.bucket.bucket}/restored/x`],
      [whole, `s3://${h.bucket.bucket}/${formatSegmentKey('', { dataspace: 'ds', segmentId: 'ranged' })}`],
      [whole, 's3://fetch-old-data/anything'],
      [whole, 's3://fetch-state/_bucket-storage/registry.json'],
      [prefixed, `s3://${h.bucket.bucket}/cluster-a/restored/x`],
      [prefixed, 's3://fetch-old-data/cluster-a/x'],
      [prefixed, 's3://fetch-state/elsewhere'],
      [staged, 's3://fetch-staging/node-1/seg-1'],
    ];
    for (const [rt, destination] of refused) {
      const counter = countRequests(rt.clients.s3());
      const err = await fetchSegment(rt, { dataspace: 'ds', segmentId: 'ranged', destination }).catch((e: unknown) => e);
      expect(err, destination).toBeInstanceOf(ProtectedDestinationError);
      expect(counter.requests).toEqual([]);
    }
    // Outside the prefix of a shared bucket, or in another bucket: allowed.
    await expect(fetchSegment(prefixed, { dataspace: 'ds', segmentId: 'never-stored', destination: `s3://${h.bucket.bucket}/restored/x` })).rejects.toBeInstanceOf(SegmentNotFoundError);
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
    await expect(restoreToFile('empty', { range: { start: 0, end: 0 } }, offRuntime)).rejects.toBeInstanceOf(InvalidRangeError);
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
    expect((await h.rootEntries()).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a directory destination (the restore root itself included) is refused at once: no request, no temporary file, none beside the root', async () => {
    await mkdir(join(h.root, 'a-dir'), { recursive: true });
    await symlink(join(h.root, 'a-dir'), join(h.root, 'link-to-dir'));
    const counter = countRequests(runtime.clients.s3());
    const parent = dirname(h.root);
    const beside = async () => (await readdir(parent)).filter((n) => n.includes('restoring'));
    const before = await beside();
    for (const [path, rule] of [
      [h.root, /is S3_STORAGE_RESTORE_ROOT itself, a directory/],
      [`${h.root}/`, /is S3_STORAGE_RESTORE_ROOT itself, a directory/],
      [join(h.root, 'a-dir'), /is a directory/],
      [`${join(h.root, 'a-dir')}/`, /is a directory/],
      [join(h.root, 'link-to-dir'), /is a directory/],
    ] as const) {
      const err = await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'ranged', destination: `file://${path}` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LocationError);
      expect((err as Error).message).toMatch(rule);
    }
    expect(counter.requests).toEqual([]);
    expect(await beside()).toEqual(before);
    expect((await h.rootEntries()).filter((n) => n.includes('restoring'))).toEqual([]);
  });

  it('a 250-character file name restores (its temporary file name is bounded); a name too long for the file system says so', async () => {
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'long-name' }, 500, 'long-name', { key: await deriveKey(CURRENT_SECRET) });
    const long = join(h.root, 'n'.repeat(250));
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'long-name', destination: `file://${long}` })).resolves.toMatchObject({ bytesWritten: 500 });
    const tooLong = fetchSegment(runtime, { dataspace: 'ds', segmentId: 'long-name', destination: `file://${join(h.root, 'n'.repeat(256))}` });
    await expect(tooLong).rejects.toThrow(LocationError);
    await expect(tooLong).rejects.toThrow(/its file name is 256 bytes long; file systems allow at most 255/);
    await expect(fetchSegment(runtime, { dataspace: 'ds', segmentId: 'long-name', destination: `file://${join(h.root, '..backup')}` })).resolves.toMatchObject({ bytesWritten: 500 });
  });

  it('a later restore into a directory removes the stale temporary files killed restores left there, and only those', async () => {
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'stale' }, 300, 'stale', { key: await deriveKey(CURRENT_SECRET) });
    const dir = join(h.root, 'stale-dir');
    await mkdir(dir);
    const old = new Date(Date.now() - 2 * 3_600_000);
    const names = { stale: '.segment.0123456789ab.bks-restoring', fresh: '.segment.ba9876543210.bks-restoring', foreign: '.segment.restoring', ours: 'notes.bks-restoring' };
    for (const name of Object.values(names)) {
      await writeFile(join(dir, name), 'left');
      if (name !== names.fresh) await utimes(join(dir, name), old, old);
    }
    await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'stale', destination: `file://${join(dir, 'segment')}` });
    expect((await readdir(dir)).sort()).toEqual([names.fresh, names.foreign, names.ours, 'segment'].sort());
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
