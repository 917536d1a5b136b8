/**
 * writeSegmentObject (src/upload/writeObject.ts) against a fake store and source: every pass over the source is
 * closed (also when the put fails), the wording of a digest mismatch, and when a failed put is accepted as a
 * lost CompleteMultipartUpload answer (only NoSuchUpload, and only when the object there is ours: size,
 * plaintext size and header). Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ByteSource } from '../src/core/byteSource.ts';
import { IntegrityError, StorageError } from '../src/core/errors.ts';
import { ciphertextSize } from '../src/core/format/index.ts';
import type { KeyEntry } from '../src/core/keyRing.ts';
import type { BucketRef, ObjectInfo, PutOptions } from '../src/core/s3Store.ts';
import type { SegmentSource } from '../src/upload/source.ts';
import { writeSegmentObject, type WriteRuntime } from '../src/upload/writeObject.ts';

const TARGET: BucketRef = { bucket: 'b', region: 'eu-west-1' };
const CHUNK_LOG2 = 16;
const KEY: KeyEntry = { keyId: Buffer.alloc(8, 1), keyIdHex: '0101010101010101', master: Buffer.alloc(32, 2) };
const DATA = Buffer.from('the bytes of segment one, 40 bytes long.');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A source over `data` that counts the passes opened and closed. */
function fakeSource(data: Buffer) {
  const passes = { opened: 0, closed: 0 };
  const source: SegmentSource = {
    url: 'file:///src/seg-1',
    size: data.length,
    staged: undefined,
    async openBytes() {
      passes.opened++;
      let position = 0;
      return {
        async read(target: Buffer) {
          const n = data.copy(target, 0, position);
          position += n;
          return n;
        },
        close: async () => {
          passes.closed++;
        },
      };
    },
    close: async () => undefined,
  };
  return { source, passes };
}

async function readToEnd(body: ByteSource | Readable): Promise<void> {
  if (body instanceof Readable) throw new Error('fake store: expected a ByteSource');
  const buffer = Buffer.alloc(16);
  while ((await body.read(buffer)) === buffer.length);
}

type PutBehaviour = (body: ByteSource | Readable, options: PutOptions) => Promise<{ etag: string | undefined; checksumCrc32: string | undefined }>;

/** A store whose put does `put` (after recording the metadata it was given) and whose HEAD answers `head(metadata)`. */
function fakeStore(put: PutBehaviour, head: (metadata: Record<string, string>) => ObjectInfo | undefined = () => undefined) {
  let metadata: Record<string, string> = {};
  const store: WriteRuntime['store'] = {
    put: async (_ref, _key, body, options) => {
      metadata = options.metadata ?? {};
      return put(body, options);
    },
    head: async () => head(metadata),
  };
  return store;
}

const runtime = (store: WriteRuntime['store'], current: KeyEntry | undefined): WriteRuntime => ({
  config: { chunkLog2: CHUNK_LOG2, kmsKeyArn: undefined, partSize: 5 * 1024 * 1024, transferConcurrency: 1 },
  keyRing: { current },
  store,
});

const request = (source: SegmentSource, announced: string | undefined) => ({ target: TARGET, key: 'k', identity: { dataspace: 'ds', segmentId: 'seg-1' }, source, sha256: announced, what: 'seg 1' });

const info = (size: number, metadata: Record<string, string>): ObjectInfo => ({
  size,
  etag: '"landed"',
  metadata,
  checksumCrc32: 'landedCrc',
  checksumType: undefined,
  serverSideEncryption: undefined,
  lastModified: undefined,
});

/** The error a retried CompleteMultipartUpload gets when its first answer was lost. */
function lostCompletion(): StorageError {
  const cause = new Error('The specified upload does not exist');
  cause.name = 'NoSuchUpload';
  return new StorageError('PutObject', 'b', 'k', 'PutObject s3://b/k failed: NoSuchUpload 404', { cause, retryable: false, httpStatus: 404 });
}

describe('writeSegmentObject: the source', () => {
  it('closes every pass it opened (the digest pass and the upload pass), also when the put fails', async () => {
    const { source, passes } = fakeSource(DATA);
    const refused = new Error('put failed (marked)');
    const store = fakeStore(async (body) => {
      await readToEnd(body);
      throw refused;
    });
    await expect(writeSegmentObject(runtime(store, undefined), request(source, undefined))).rejects.toBe(refused);
    expect(passes).toEqual({ opened: 2, closed: 2 });
  });

  it('a source whose digest differs from the announced sha256 fails with the meter message naming both suspects', async () => {
    const { source } = fakeSource(DATA);
    const wrong = sha256(Buffer.from('other'));
    const store = fakeStore(async (body) => {
      await readToEnd(body);
      return { etag: '"e"', checksumCrc32: 'c' };
    });
    const err = await writeSegmentObject(runtime(store, undefined), request(source, wrong)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(
      `seg 1 (announced sha256, or the digest read before the upload: the source changed while it was read, or the announcement is wrong): sha256 mismatch, expected ${wrong}, got ${sha256(DATA)}`,
    );
  });
});

describe('writeSegmentObject: a failed put accepted as a lost completion', () => {
  const plainRuntime = (putError: Error, sizeDelta = 0) =>
    runtime(
      fakeStore(
        async (body) => {
          // A completion is sent once every part was read: the body was read whole.
          await readToEnd(body);
          throw putError;
        },
        (metadata) => info(DATA.length + sizeDelta, metadata),
      ),
      undefined,
    );

  it('NoSuchUpload with our object there: accepted, with the landed checksum', async () => {
    const written = await writeSegmentObject(plainRuntime(lostCompletion()), request(fakeSource(DATA).source, sha256(DATA)));
    expect(written).toEqual({ outcome: 'written', storedSize: DATA.length, checksumCrc32: 'landedCrc', sha256: sha256(DATA) });
  });

  it('any other StorageError is the error, even with our object there', async () => {
    const cause = new Error('We encountered an internal error');
    cause.name = 'InternalError';
    const other = new StorageError('PutObject', 'b', 'k', 'PutObject s3://b/k failed: InternalError 500', { cause, retryable: true, httpStatus: 500 });
    await expect(writeSegmentObject(plainRuntime(other), request(fakeSource(DATA).source, sha256(DATA)))).rejects.toBe(other);
    const noCause = new StorageError('PutObject', 'b', 'k', 'PutObject s3://b/k failed: socket hang up', { retryable: true });
    await expect(writeSegmentObject(plainRuntime(noCause), request(fakeSource(DATA).source, sha256(DATA)))).rejects.toBe(noCause);
  });

  it('NoSuchUpload, but the object there has another size: the error stands', async () => {
    const lost = lostCompletion();
    await expect(writeSegmentObject(plainRuntime(lost, 1), request(fakeSource(DATA).source, sha256(DATA)))).rejects.toBe(lost);
  });

  it('NoSuchUpload, encrypted: accepted only when the object there has our header', async () => {
    const storedSize = ciphertextSize(DATA.length, CHUNK_LOG2);
    const ours = runtime(
      fakeStore(
        async () => Promise.reject(lostCompletion()),
        (metadata) => info(storedSize, metadata),
      ),
      KEY,
    );
    expect(await writeSegmentObject(ours, request(fakeSource(DATA).source, undefined))).toMatchObject({ outcome: 'written', storedSize, checksumCrc32: 'landedCrc' });

    const lost = lostCompletion();
    const otherHeader = runtime(
      fakeStore(
        async () => Promise.reject(lost),
        (metadata) => info(storedSize, { ...metadata, 'bks-header': Buffer.alloc(48, 9).toString('base64') }),
      ),
      KEY,
    );
    await expect(writeSegmentObject(otherHeader, request(fakeSource(DATA).source, undefined))).rejects.toBe(lost);
  });
});
