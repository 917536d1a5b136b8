/**
 * The S3 access layer against a scripted client: what it sends (conditions, paging, batches) and how it reads
 * S3's answers. Above all, "not found" is only a 404 (or NotFound/NoSuchKey): a 403 or a 5xx on a HEAD or a GET
 * is an error naming the fix, never taken for an absent object (an upload would then write, a restore would
 * search on). Written for the survivors of the mutation run `s3core` (docs/MUTATION.md).
 */
import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { StorageError } from '../src/core/errors.ts';
import { S3Store, type BucketRef } from '../src/core/s3Store.ts';

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
});
