/**
 * The S3 access layer against a scripted client: what it sends (conditions, paging, batches) and how it reads
 * S3's answers. Above all, "not found" is only a 404 (or NotFound/NoSuchKey): a 403 or a 5xx on a HEAD or a GET
 * is an error naming the fix, never taken for an absent object (an upload would then write, a restore would
 * search on). Written for the survivors of the mutation run `s3core` (docs/MUTATION.md).
 */
import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StorageError, TruncatedError } from '../src/core/errors.ts';
import { isConditionFailure, S3Store, storageError, type BucketRef } from '../src/core/s3Store.ts';

const REF: BucketRef = { bucket: 'data-bucket', region: 'eu-west-1' };

const s3Error = (name: string, httpStatusCode: number | undefined) =>
  new S3ServiceException({ name, $fault: httpStatusCode !== undefined && httpStatusCode >= 500 ? 'server' : 'client', $metadata: { httpStatusCode }, message: `${name} message` });

/** A client whose answers are scripted in order; it records every command's name and input. */
function scripted(...answers: (object | Error)[]) {
  const sent: { command: string; input: Record<string, unknown> }[] = [];
  const regions: string[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }) {
      sent.push({ command: command.constructor.name, input: command.input });
      const answer = answers.shift() ?? {};
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  const store = new S3Store((region) => {
    regions.push(region);
    return client as unknown as S3Client;
  });
  return { store, sent, regions };
}

describe('S3Store', () => {
  it('HEAD and small GETs: absent only on 404, NotFound or NoSuchKey', async () => {
    for (const absent of [s3Error('NotFound', 404), s3Error('Whatever', 404), s3Error('NotFound', undefined), s3Error('NoSuchKey', undefined)]) {
      expect(await scripted(absent).store.head(REF, 'k')).toBeUndefined();
      expect(await scripted(absent).store.getSmall(REF, 'k')).toBeUndefined();
    }
  });

  it('a 403 on HEAD or GET is an error that names the fix, not an absent object', async () => {
    for (const read of [(s: S3Store) => s.head(REF, 'seg/1'), (s: S3Store) => s.getSmall(REF, 'seg/1')]) {
      const err = await read(scripted(s3Error('Forbidden', 403)).store).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect(err).toMatchObject({ httpStatus: 403, retryable: false });
      expect((err as Error).message).toMatch(/^(HeadObject|GetObject) s3:\/\/data-bucket\/seg\/1 \(eu-west-1\) failed: Forbidden 403: access denied: check the credentials and the bucket policy$/);
    }
    await expect(scripted(s3Error('InternalError', 503)).store.head(REF, 'k')).rejects.toMatchObject({ httpStatus: 503, retryable: true });
    await expect(scripted(new Error('socket hang up')).store.getSmall(REF, 'k')).rejects.toMatchObject({ retryable: true, message: expect.stringContaining('failed: Error: socket hang up') });
  });

  it('HEAD asks for checksums and reads what S3 answers, in the bucket region', async () => {
    const { store, sent, regions } = scripted({ ContentLength: 7, ETag: '"e"', Metadata: { 'bks-size': '3' }, ChecksumCRC32: 'AAAAAA==' });
    expect(await store.head(REF, 'k')).toMatchObject({ size: 7, etag: '"e"', metadata: { 'bks-size': '3' }, checksumCrc32: 'AAAAAA==' });
    expect(sent).toEqual([{ command: 'HeadObjectCommand', input: { Bucket: 'data-bucket', Key: 'k', ChecksumMode: 'ENABLED' } }]);
    expect(regions).toEqual(['eu-west-1']);
  });

  it('small PUTs carry exactly the condition asked for', async () => {
    const { store, sent } = scripted({ ETag: '"1"' }, { ETag: '"2"' }, { ETag: '"3"' });
    expect(await store.putSmall(REF, 'r', 'a', { ifNoneMatch: '*' })).toBe('"1"');
    await store.putSmall(REF, 'r', 'b', { ifMatch: '"1"' });
    await store.putSmall(REF, 'r', 'c');
    expect(sent.map((s) => [s.input.IfNoneMatch, s.input.IfMatch])).toEqual([
      ['*', undefined],
      [undefined, '"1"'],
      [undefined, undefined],
    ]);
    expect(sent.map((s) => Object.keys(s.input).filter((k) => k.startsWith('If')))).toEqual([['IfNoneMatch'], ['IfMatch'], []]);
  });

  it('a multipart-sized or whole PUT is write-once when asked (If-None-Match: *)', async () => {
    const { store, sent } = scripted({ ETag: '"w"' });
    const body = { read: async () => 0 };
    await store.put(REF, 'seg', body, { partSize: 5 * 1024 * 1024, queueSize: 1, ifNoneMatch: '*' });
    expect(sent[0]).toMatchObject({ command: 'PutObjectCommand', input: { Bucket: 'data-bucket', Key: 'seg', IfNoneMatch: '*' } });
  });

  it('listings page on with the continuation token; StartAfter only on the first page; no empty prefix sent', async () => {
    const { store, sent } = scripted({ Contents: [{ Key: 'a/1', Size: 1 }], NextContinuationToken: 't1' }, { Contents: [{ Key: 'a/2' }, {}] });
    const pages: string[][] = [];
    for await (const page of store.list(REF, 'a/', 'a/0')) pages.push(page.map((o) => `${o.key}:${o.size}`));
    expect(pages).toEqual([['a/1:1'], ['a/2:0']]);
    expect(sent.map((s) => s.input)).toEqual([
      { Bucket: 'data-bucket', Prefix: 'a/', ContinuationToken: undefined, StartAfter: 'a/0' },
      { Bucket: 'data-bucket', Prefix: 'a/', ContinuationToken: 't1' },
    ]);
    const all = scripted({ Contents: [] });
    for await (const page of all.store.list(REF, '')) expect(page).toEqual([]);
    expect(all.sent[0]?.input).toEqual({ Bucket: 'data-bucket', Prefix: undefined, ContinuationToken: undefined });
  });

  it('common prefixes are gathered over every page', async () => {
    const { store, sent } = scripted({ CommonPrefixes: [{ Prefix: 'a/_s/' }, {}], NextContinuationToken: 't' }, { CommonPrefixes: [{ Prefix: 'b/_s/' }] });
    expect(await store.commonPrefixes(REF, '_s/')).toEqual(['a/_s/', 'b/_s/']);
    expect(sent.map((s) => s.input.ContinuationToken)).toEqual([undefined, 't']);
    await expect(scripted(s3Error('AccessDenied', 403)).store.commonPrefixes(REF, '_s/')).rejects.toThrow(/^ListObjectsV2 s3:\/\/data-bucket \(eu-west-1\) failed: AccessDenied 403/);
  });

  it('batch deletes: none sent for no keys, at most 1,000 keys, quiet, per-key failures returned', async () => {
    const none = scripted();
    expect((await none.store.deleteBatch(REF, [])).size).toBe(0);
    expect(none.sent).toEqual([]);
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const { store, sent } = scripted({ Errors: [{ Key: 'k1', Code: 'AccessDenied', Message: 'no' }, { Code: 'X' }, { Key: 'k2' }] });
    expect([...(await store.deleteBatch(REF, keys))]).toEqual([
      ['k1', 'AccessDenied: no'],
      ['k2', 'Error: '],
    ]);
    expect(sent[0]?.input).toEqual({ Bucket: 'data-bucket', Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } });
    await expect(store.deleteBatch(REF, [...keys, 'one more'])).rejects.toThrow(RangeError);
  });

  it('a missing bucket is named as such (NoSuchBucket from any call, or a 404 on HeadBucket); other 404s keep S3\'s words', async () => {
    const missing = 'the bucket does not exist: check S3_STORAGE_BUCKET/S3_STORAGE_REGION or the registry';
    const head = scripted(s3Error('NotFound', 404));
    await expect(head.store.headBucket(REF)).rejects.toThrow(`HeadBucket s3://data-bucket (eu-west-1) failed: NotFound 404: ${missing}`);
    expect(head.sent).toEqual([{ command: 'HeadBucketCommand', input: { Bucket: 'data-bucket' } }]);
    await expect(scripted({}).store.headBucket(REF)).resolves.toBeUndefined();
    await expect(scripted(s3Error('NoSuchBucket', 404)).store.putSmall(REF, 'k', 'x')).rejects.toThrow(`PutObject s3://data-bucket/k (eu-west-1) failed: NoSuchBucket 404: ${missing}`);
    await expect(scripted(s3Error('NoSuchKey', 404)).store.deleteObject(REF, 'k')).rejects.toThrow('DeleteObject s3://data-bucket/k (eu-west-1) failed: NoSuchKey 404: NoSuchKey message');
    await expect(scripted(s3Error('NoSuchKey', 404)).store.get(REF, 'k')).rejects.toMatchObject({ operation: 'GetObject', key: 'k', httpStatus: 404 });
    expect(storageError('GetObject', REF, 'k', 'not an Error').message).toBe('GetObject s3://data-bucket/k (eu-west-1) failed: Error: not an Error');
  });

  it('a lost conditional write is a 412 or a 409, nothing else', () => {
    const withStatus = (httpStatus: number) => new StorageError('PutObject', 'b', 'k', 'm', { retryable: false, httpStatus });
    expect([412, 409, 404, 403, 500].map((status) => isConditionFailure(withStatus(status)))).toEqual([true, true, false, false, false]);
    expect(isConditionFailure(Object.assign(new Error('m'), { httpStatus: 412 }))).toBe(false);
  });

  it('every call names its operation and object when it fails', async () => {
    const denied = () => scripted(s3Error('AccessDenied', 403)).store;
    await expect(denied().putSmall(REF, 'k', 'x')).rejects.toMatchObject({ operation: 'PutObject', key: 'k' });
    await expect(denied().deleteObject(REF, 'k')).rejects.toMatchObject({ operation: 'DeleteObject', key: 'k' });
    await expect(denied().deleteBatch(REF, ['a'])).rejects.toMatchObject({ operation: 'DeleteObjects', key: undefined });
    await expect(denied().deleteBatch(REF, Array.from({ length: 1001 }, (_, i) => `k${i}`))).rejects.toThrow('deleteBatch takes at most 1,000 keys');
    await expect(denied().list(REF, 'p/').next()).rejects.toMatchObject({ operation: 'ListObjectsV2', key: 'p/' });
    await expect(denied().list(REF, '').next()).rejects.toMatchObject({ operation: 'ListObjectsV2', key: undefined });
    const deleted = scripted({});
    await deleted.store.deleteObject(REF, 'k');
    expect(deleted.sent).toEqual([{ command: 'DeleteObjectCommand', input: { Bucket: 'data-bucket', Key: 'k' } }]);
  });

  it('a failed upload is a StorageError of "Upload", unless the body failed: then the body\'s own error', async () => {
    const options = { partSize: 5 * 1024 * 1024, queueSize: 1 };
    await expect(scripted(s3Error('AccessDenied', 403)).store.put(REF, 'k', Readable.from([Buffer.from('abc')]), options)).rejects.toMatchObject({ operation: 'Upload', httpStatus: 403 });
    const own = new TruncatedError('the source ended early');
    const failing = new Readable({ read() { this.destroy(own); } });
    await expect(scripted({}).store.put(REF, 'k', failing, options)).rejects.toBe(own);
  });

  describe('aborting incomplete uploads of a key', () => {
    const CUT = new Date('2026-11-30T00:00:00Z');
    const before = new Date(CUT.getTime() - 1);

    it('aborts only those of exactly this key initiated before the cut-off; counts the live ones; an upload gone meanwhile is skipped', async () => {
      const uploads = [
        { Key: 'k', UploadId: 'old', Initiated: before },
        { Key: 'k', UploadId: 'gone', Initiated: before },
        { Key: 'k', UploadId: 'at-cut', Initiated: CUT },
        { Key: 'k', UploadId: 'no-date' },
        { Key: 'k-longer', UploadId: 'other-key', Initiated: before },
        { Key: 'k', Initiated: before },
      ];
      const { store, sent } = scripted({ Uploads: uploads }, {}, s3Error('NoSuchUpload', 404));
      expect(await store.abortIncompleteUploads(REF, 'k', CUT)).toEqual({ aborted: 1, live: 2 });
      expect(sent).toEqual([
        { command: 'ListMultipartUploadsCommand', input: { Bucket: 'data-bucket', Prefix: 'k' } },
        { command: 'AbortMultipartUploadCommand', input: { Bucket: 'data-bucket', Key: 'k', UploadId: 'old' } },
        { command: 'AbortMultipartUploadCommand', input: { Bucket: 'data-bucket', Key: 'k', UploadId: 'gone' } },
      ]);
    });

    it('a server without the listing (400, 404, 405, 501) answers undefined; a missing bucket or a refusal is an error', async () => {
      for (const status of [400, 404, 405, 501]) expect(await scripted(s3Error('NotImplemented', status)).store.abortIncompleteUploads(REF, 'k', CUT)).toBeUndefined();
      await expect(scripted(s3Error('NoSuchBucket', 404)).store.abortIncompleteUploads(REF, 'k', CUT)).rejects.toMatchObject({ operation: 'ListMultipartUploads' });
      await expect(scripted(s3Error('AccessDenied', 403)).store.abortIncompleteUploads(REF, 'k', CUT)).rejects.toMatchObject({ operation: 'ListMultipartUploads', httpStatus: 403 });
      const refused = scripted({ Uploads: [{ Key: 'k', UploadId: 'old', Initiated: before }] }, s3Error('AccessDenied', 403));
      await expect(refused.store.abortIncompleteUploads(REF, 'k', CUT)).rejects.toMatchObject({ operation: 'AbortMultipartUpload', key: 'k' });
    });
  });
});
