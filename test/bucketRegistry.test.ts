/**
 * The registry of buckets: concurrent cold starts never lose an entry (on moto_server, which enforces
 * If-Match/If-None-Match, and on a request-level double that answers 412 as S3 does), a damaged registry is an
 * error and is never reset, an unreachable state bucket is a clear cold-start error.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBucketRegistry, parseRegistry } from '../src/core/bucketRegistry.ts';
import { loadConfig, type Config } from '../src/core/config.ts';
import { RegistryError, StorageError } from '../src/core/errors.ts';
import { registryKey } from '../src/core/objectKeys.ts';
import { S3Store, type BucketRef } from '../src/core/s3Store.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';

const BUCKETS = ['bucket-one', 'bucket-two', 'bucket-three', 'bucket-four', 'bucket-five'];
const configFor = (bucket: string, extra: Record<string, string> = {}): Config =>
  loadConfig({ S3_STORAGE_BUCKET: bucket, S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: 'state-bucket', AWS_REGION: 'us-east-1', ...extra });
const fastSleep = () => new Promise<void>((r) => setTimeout(r, Math.random() * 5));

/** An in-memory S3 object store with S3's conditional-write semantics: 412 when the precondition fails. */
class ConditionalDouble {
  readonly objects = new Map<string, { body: string; etag: string }>();
  writes = 0;
  preconditionFailures = 0;
  #version = 0;
  async getSmall(_ref: BucketRef, key: string) {
    await fastSleep();
    const o = this.objects.get(key);
    return o && { body: o.body, etag: o.etag };
  }
  async putSmall(ref: BucketRef, key: string, body: string | Buffer, condition?: { ifNoneMatch: '*' } | { ifMatch: string }) {
    await fastSleep();
    const existing = this.objects.get(key);
    const ok = condition === undefined || ('ifNoneMatch' in condition ? existing === undefined : existing?.etag === condition.ifMatch);
    if (!ok) {
      this.preconditionFailures++;
      throw new StorageError('PutObject', ref.bucket, key, 'PreconditionFailed 412', { retryable: false, httpStatus: 412 });
    }
    this.writes++;
    const etag = `"v${++this.#version}"`;
    this.objects.set(key, { body: String(body), etag });
    return etag;
  }
}


describe('registry against a request-level double (412 as S3 answers it)', () => {
  it('50 concurrent cold starts with 5 bucket configurations register all 5, none lost', async () => {
    const double = new ConditionalDouble();
    const starts = Array.from({ length: 50 }, (_, i) => openBucketRegistry(double, configFor(BUCKETS[i % 5]!), { sleep: fastSleep, maxAttempts: 50 }));
    const registries = await Promise.all(starts);
    const doc = parseRegistry(double.objects.get(registryKey(''))!.body, 'test');
    expect(doc.buckets.map((b) => b.bucket).sort()).toEqual([...BUCKETS].sort());
    expect(double.writes).toBe(5);
    expect(double.preconditionFailures).toBeGreaterThan(0);
    for (const [i, r] of registries.entries()) expect((await r.searchOrder())[0]?.bucket).toBe(BUCKETS[i % 5]);
  });

  it('lookups search the current bucket first, then the others newest first; cleanup sees all', async () => {
    const double = new ConditionalDouble();
    for (const b of ['bucket-one', 'bucket-two', 'bucket-three']) await openBucketRegistry(double, configFor(b));
    const reg = await openBucketRegistry(double, configFor('bucket-two'));
    expect((await reg.searchOrder()).map((r) => r.bucket)).toEqual(['bucket-two', 'bucket-three', 'bucket-one']);
    expect((await reg.all()).map((r) => r.bucket)).toEqual(['bucket-one', 'bucket-two', 'bucket-three']);
  });

  it('a corrupt or hand-edited registry is a RegistryError and is never rewritten', async () => {
    for (const body of ['{not json', '{"version":2,"buckets":[]}', '{"version":1,"buckets":[{"bucket":"a-b","region":"us-east-1"}]}', '{"version":1,"buckets":[{"bucket":"dup","region":"us-east-1","firstSeen":"2026-01-01T00:00:00Z"},{"bucket":"dup","region":"us-east-1","firstSeen":"2026-01-02T00:00:00Z"}]}']) {
      const double = new ConditionalDouble();
      double.objects.set(registryKey(''), { body, etag: '"x"' });
      const err = await openBucketRegistry(double, configFor('bucket-one')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(/registry s3:\/\/state-bucket\/_bucket-storage\/registry.json/);
      expect((err as Error).message).toMatch(/never reset/);
      expect(double.objects.get(registryKey(''))!.body).toBe(body);
      expect(double.writes).toBe(0);
    }
  });

  it('an unreachable state bucket is a clear cold-start error', async () => {
    const store = new S3Store(() => new S3Client({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const err = await openBucketRegistry(store, configFor('bucket-one')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/cannot be read.*S3_STORAGE_STATE_BUCKET/);
  });

  it('without S3_STORAGE_STATE_BUCKET the current bucket is the only one', async () => {
    const double = new ConditionalDouble();
    const config = loadConfig({ S3_STORAGE_BUCKET: 'solo-bucket', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off' });
    const reg = await openBucketRegistry(double, config);
    expect(await reg.all()).toEqual([{ bucket: 'solo-bucket', region: 'us-east-1' }]);
    expect(double.writes).toBe(0);
  });
});

describe('registry on moto_server (enforces If-Match / If-None-Match)', () => {
  let moto: MotoServer | undefined;
  let endpoint = '';
  beforeAll(async () => {
    moto = await startMoto();
    endpoint = moto.endpoint;
    const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    await s3.send(new CreateBucketCommand({ Bucket: 'state-bucket' }));
  });
  afterAll(() => {
    moto?.stop();
  });

  it('50 concurrent cold starts with 5 bucket configurations register all 5, none lost', async () => {
    const env = { S3_STORAGE_ENDPOINT_BASE: endpoint, S3_STORAGE_PATH_STYLE_ACCESS: 'true', S3_STORAGE_ACCESSKEY: 'moto', S3_STORAGE_SECRETKEY: 'moto' };
    const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 3 });
    let conflicts = 0;
    s3.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) conflicts++;
          throw err;
        }
      },
      { step: 'initialize', name: 'count412' },
    );
    const store = new S3Store(() => s3);
    const registries = await Promise.all(Array.from({ length: 50 }, (_, i) => openBucketRegistry(store, configFor(BUCKETS[i % 5]!, env), { maxAttempts: 50, sleep: fastSleep })));
    const stored = await store.getSmall({ bucket: 'state-bucket', region: 'us-east-1' }, registryKey(''));
    const doc = parseRegistry(stored!.body, 'moto');
    expect(doc.buckets.map((b) => b.bucket).sort()).toEqual([...BUCKETS].sort());
    expect(registries).toHaveLength(50);
    expect(conflicts).toBeGreaterThan(0); // the races really happened, and conditional writes resolved them
  });
});
