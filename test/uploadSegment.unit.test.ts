/**
 * uploadSegment (src/upload/uploadSegment.ts) over an in-memory runtime (fake stores, registry and deletion
 * index; encryption off): the size-mismatch wording, a write refused with 412 where no segment object is found,
 * a twin delivery acknowledged without another pass over the source, and `verified: false` when nothing was
 * read back. Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ByteSource } from '../src/core/byteSource.ts';
import { IntegrityError, StorageError } from '../src/core/errors.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import type { BucketRef, ObjectInfo, PutOptions } from '../src/core/s3Store.ts';
import { uploadSegment, type UploadRuntime } from '../src/upload/uploadSegment.ts';

const CURRENT: BucketRef = { bucket: 'current-bucket', region: 'eu-west-1' };
const IDENTITY = { dataspace: 'ds', segmentId: 'seg-1' };
const KEY = formatSegmentKey('', IDENTITY);
const DATA = Buffer.from('segment bytes, read from the source');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const info = (size: number, metadata: Record<string, string>): ObjectInfo => ({
  size,
  etag: '"e"',
  metadata,
  checksumCrc32: 'crc',
  checksumType: undefined,
  serverSideEncryption: undefined,
  lastModified: new Date('2026-01-01T00:00:00Z'),
});

const keyTaken = () => new StorageError('PutObject', CURRENT.bucket, KEY, `PutObject s3://${CURRENT.bucket}/${KEY} failed: PreconditionFailed 412`, { retryable: false, httpStatus: 412 });

async function readToEnd(body: ByteSource | Readable): Promise<void> {
  if (body instanceof Readable) throw new Error('fake store: expected a ByteSource');
  const buffer = Buffer.alloc(64);
  while ((await body.read(buffer)) === buffer.length);
}

interface Fakes {
  /** What HEAD of the segment's key in the current bucket answers, before and after the put. */
  readonly stored?: ObjectInfo | undefined;
  readonly afterPut?: ObjectInfo | undefined;
  readonly put: (body: ByteSource | Readable, options: PutOptions) => Promise<{ etag: string | undefined; checksumCrc32: string | undefined }>;
  readonly staging?: { readonly bucket: string; readonly region: string; readonly deleteAfterUpload: boolean } | undefined;
}

/**
 * An upload runtime with encryption off and no pending deletion. It holds only what uploadSegment reads; the
 * cast stands for the rest of Runtime (config fields, registry and registrar methods it never calls).
 */
function fakeRuntime(sourceRoot: string, fakes: Fakes) {
  const counts = { heads: 0, stagedGets: 0, puts: 0, deleted: [] as string[] };
  let written = false;
  const runtime = {
    config: {
      keyPrefix: '',
      region: CURRENT.region,
      sourceRoot,
      staging: fakes.staging,
      ephemeralDisks: false,
      uploadTimeoutSeconds: 900,
      encryption: { mode: 'off' },
      plainObjectsBefore: undefined,
      chunkLog2: 16,
      kmsKeyArn: undefined,
      partSize: 5 * 1024 * 1024,
      transferConcurrency: 1,
    },
    keyRing: { current: undefined },
    registry: { current: CURRENT, searchOrder: async () => [CURRENT], all: async () => [CURRENT] },
    registrar: { ensureCurrentRegistered: async () => undefined },
    deletions: {},
    pendingDeletions: { marksHolding: async () => [], update: () => undefined },
    store: {
      head: async () => {
        counts.heads++;
        return written ? fakes.afterPut : fakes.stored;
      },
      get: async () => Readable.from([DATA]),
      put: async (_ref: BucketRef, _key: string, body: ByteSource | Readable, options: PutOptions) => {
        counts.puts++;
        written = true;
        return fakes.put(body, options);
      },
      abortIncompleteUploads: async () => 0,
    },
    roleStore: {
      head: async () => info(DATA.length, {}),
      get: async () => {
        counts.stagedGets++;
        return Readable.from([DATA]);
      },
      deleteObject: async (ref: BucketRef, key: string) => void counts.deleted.push(`${ref.bucket}/${key}`),
    },
  } as unknown as UploadRuntime;
  return { runtime, counts };
}

let root = '';
let path = '';
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'uploadsegment-'));
  path = join(root, 'seg-1');
  writeFileSync(path, DATA);
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const announce = (extra: { size?: number; sha256?: string; source?: string } = {}) => ({ version: 1 as const, ...IDENTITY, source: `file://${path}`, ...extra });

describe('uploadSegment', () => {
  it('a source whose size differs from the announcement is refused, naming the segment and its source', async () => {
    const { runtime, counts } = fakeRuntime(root, { put: async () => ({ etag: '"e"', checksumCrc32: 'c' }) });
    const err = await uploadSegment(runtime, announce({ size: 99 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(`segment ds/seg-1 (file://${path}): the source's size differs from the announcement: size mismatch, expected 99, got ${DATA.length}`);
    expect(counts.puts).toBe(0);
  });

  it('a write refused with 412 where no segment object is found is a retryable StorageError naming the object', async () => {
    const { runtime } = fakeRuntime(root, { put: async () => Promise.reject(keyTaken()) });
    const err = await uploadSegment(runtime, announce({ sha256: sha256(DATA) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ operation: 'PutObject', bucket: CURRENT.bucket, key: KEY, retryable: true, httpStatus: 412 });
    expect((err as Error).message).toBe(`segment ds/seg-1 (file://${path}): S3 refused the write (the key exists) but s3://${CURRENT.bucket}/${KEY} holds no segment object`);
  });

  it('a twin delivery (412, our object there) is acknowledged with the digest already computed: no third pass over the source', async () => {
    const twin = info(DATA.length, { 'bks-format': 'plain', 'bks-size': String(DATA.length), 'bks-sha256': sha256(DATA) });
    const { runtime, counts } = fakeRuntime(root, { afterPut: twin, put: async () => Promise.reject(keyTaken()) });
    const result = await uploadSegment(runtime, announce({ source: 's3://ingest/seg-1' }));
    expect(result).toEqual({ outcome: 'already-stored', bucket: CURRENT.bucket, key: KEY, size: DATA.length, storedSize: DATA.length, sha256: sha256(DATA), verified: false, cancelledDeletions: 0 });
    // One pass for the digest that goes into bks-sha256, one for the upload.
    expect(counts.stagedGets).toBe(2);
  });

  it('an upload without ephemeral disks or a staged copy to delete is not read back: verified is false', async () => {
    const { runtime, counts } = fakeRuntime(root, {
      put: async (body) => {
        await readToEnd(body);
        return { etag: '"e"', checksumCrc32: 'crc' };
      },
    });
    const result = await uploadSegment(runtime, announce({ sha256: sha256(DATA) }));
    expect(result).toEqual({ outcome: 'uploaded', bucket: CURRENT.bucket, key: KEY, size: DATA.length, storedSize: DATA.length, sha256: sha256(DATA), verified: false, cancelledDeletions: 0 });
    // The lookup of an already-stored copy only.
    expect(counts.heads).toBe(1);
  });

  describe('a staged source (S3_STORAGE_STAGING_BUCKET)', () => {
    const uploaded = (staging: Fakes['staging']) =>
      fakeRuntime(root, {
        staging,
        afterPut: info(DATA.length, { 'bks-format': 'plain', 'bks-size': String(DATA.length), 'bks-sha256': sha256(DATA) }),
        put: async (body) => {
          await readToEnd(body);
          return { etag: '"e"', checksumCrc32: 'crc' };
        },
      });

    it('with delete-after-upload: read back, then the staged copy deleted', async () => {
      const { runtime, counts } = uploaded({ bucket: 'ingest', region: 'us-east-2', deleteAfterUpload: true });
      const result = await uploadSegment(runtime, announce({ source: 's3://ingest/in/seg-1', sha256: sha256(DATA) }));
      expect(result).toMatchObject({ outcome: 'uploaded', verified: true, stagedCopy: 'deleted' });
      expect(counts.heads).toBe(2);
      expect(counts.deleted).toEqual(['ingest/in/seg-1']);
    });

    it('without delete-after-upload: kept, and not read back', async () => {
      const { runtime, counts } = uploaded({ bucket: 'ingest', region: 'us-east-2', deleteAfterUpload: false });
      const result = await uploadSegment(runtime, announce({ source: 's3://ingest/in/seg-1', sha256: sha256(DATA) }));
      expect(result).toMatchObject({ outcome: 'uploaded', verified: false });
      expect(result.stagedCopy).toBeUndefined();
      expect(counts.deleted).toEqual([]);
    });

    it('a source in another bucket is not staged: never deleted, not read back', async () => {
      const { runtime, counts } = uploaded({ bucket: 'ingest', region: 'us-east-2', deleteAfterUpload: true });
      const result = await uploadSegment(runtime, announce({ source: 's3://elsewhere/in/seg-1', sha256: sha256(DATA) }));
      expect(result).toMatchObject({ outcome: 'uploaded', verified: false });
      expect(result.stagedCopy).toBeUndefined();
      expect(counts.deleted).toEqual([]);
    });
  });
});
