/**
 * The registry of buckets: a cold start only reads it; the upload path's registrar adds the current bucket after
 * a HEAD of the bucket, and concurrent registrars never lose an entry (on moto_server, which enforces
 * If-Match/If-None-Match, and on a request-level double that answers 412 as S3 does); removal is conditional
 * too and refuses the current bucket; a damaged registry is an error and is never reset, an unreachable state
 * bucket is a clear cold-start error.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBucketRegistry, parseRegistry } from '../src/core/bucketRegistry.ts';
import { createRegistrar, removeRegistryEntry, type RegistrarOptions } from '../src/core/registryWrites.ts';
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
  /** Buckets that exist (HeadBucket answers 404 for the others). */
  readonly buckets = new Set(BUCKETS);
  writes = 0;
  heads = 0;
  preconditionFailures = 0;
  #version = 0;
  async headBucket(ref: BucketRef) {
    this.heads++;
    await fastSleep();
    if (!this.buckets.has(ref.bucket)) throw new StorageError('HeadBucket', ref.bucket, undefined, `HeadBucket s3://${ref.bucket} failed: NotFound 404: the bucket does not exist`, { retryable: false, httpStatus: 404 });
  }
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

/** A cold start followed by the upload path's registration, as the first upload of a runtime does it. */
async function coldStartAndRegister(store: ConditionalDouble | S3Store, config: Config, options: RegistrarOptions = {}) {
  const registry = await openBucketRegistry(store, config);
  await createRegistrar({ registry: store, buckets: store }, config, registry, options).ensureCurrentRegistered();
  return registry;
}

describe('registry against a request-level double (412 as S3 answers it)', () => {
  it('a cold start reads and never writes: an unknown bucket is searched and cleaned, and leaves no entry', async () => {
    const double = new ConditionalDouble();
    await coldStartAndRegister(double, configFor('bucket-one'));
    const before = double.objects.get(registryKey(''))!.body;
    const typo = await openBucketRegistry(double, configFor('bucket-onee'));
    expect(typo.currentRegistered).toBe(false);
    expect(await typo.searchOrder()).toEqual([{ bucket: 'bucket-onee', region: 'us-east-1' }, { bucket: 'bucket-one', region: 'us-east-1' }]);
    expect((await typo.all()).map((r) => r.bucket)).toEqual(['bucket-one', 'bucket-onee']);
    expect(double.objects.get(registryKey(''))!.body).toBe(before);
    expect(double.writes).toBe(1);
    // Without any registry yet, a cold start creates none.
    const empty = new ConditionalDouble();
    expect((await (await openBucketRegistry(empty, configFor('bucket-two'))).all()).map((r) => r.bucket)).toEqual(['bucket-two']);
    expect(empty.objects.size).toBe(0);
  });

  it('the registrar proves the bucket exists before registering it, once; a missing bucket is never registered', async () => {
    const double = new ConditionalDouble();
    const registry = await openBucketRegistry(double, configFor('bucket-one'));
    const registrar = createRegistrar({ registry: double, buckets: double }, configFor('bucket-one'), registry);
    await Promise.all([registrar.ensureCurrentRegistered(), registrar.ensureCurrentRegistered()]);
    await registrar.ensureCurrentRegistered();
    expect([double.heads, double.writes]).toEqual([1, 1]);
    // A runtime whose cold start already saw the bucket registered does nothing at all.
    const later = await openBucketRegistry(double, configFor('bucket-one'));
    await createRegistrar({ registry: double, buckets: double }, configFor('bucket-one'), later).ensureCurrentRegistered();
    expect([double.heads, double.writes]).toEqual([1, 1]);
    const typo = configFor('bucket-onee');
    const failing = createRegistrar({ registry: double, buckets: double }, typo, await openBucketRegistry(double, typo));
    for (let i = 0; i < 2; i++) await expect(failing.ensureCurrentRegistered()).rejects.toThrow(/bucket-onee.*does not exist/);
    expect([double.heads, double.writes]).toEqual([3, 1]);
    expect(parseRegistry(double.objects.get(registryKey(''))!.body, 'test').buckets.map((b) => b.bucket)).toEqual(['bucket-one']);
  });

  it('50 concurrent first uploads with 5 bucket configurations register all 5, none lost', async () => {
    const double = new ConditionalDouble();
    const starts = Array.from({ length: 50 }, (_, i) => coldStartAndRegister(double, configFor(BUCKETS[i % 5]!), { sleep: fastSleep, maxAttempts: 50 }));
    const registries = await Promise.all(starts);
    const doc = parseRegistry(double.objects.get(registryKey(''))!.body, 'test');
    expect(doc.buckets.map((b) => b.bucket).sort()).toEqual([...BUCKETS].sort());
    expect(double.writes).toBe(5);
    expect(double.preconditionFailures).toBeGreaterThan(0);
    for (const [i, r] of registries.entries()) expect((await r.searchOrder())[0]?.bucket).toBe(BUCKETS[i % 5]);
  });

  it('lookups search the current bucket first, then the others newest first; cleanup sees all', async () => {
    const double = new ConditionalDouble();
    for (const b of ['bucket-one', 'bucket-two', 'bucket-three']) await coldStartAndRegister(double, configFor(b));
    const reg = await openBucketRegistry(double, configFor('bucket-two'));
    expect((await reg.searchOrder()).map((r) => r.bucket)).toEqual(['bucket-two', 'bucket-three', 'bucket-one']);
    expect((await reg.all()).map((r) => r.bucket)).toEqual(['bucket-one', 'bucket-two', 'bucket-three']);
  });

  it('a corrupt or hand-edited registry is a RegistryError and is never rewritten', async () => {
    for (const body of ['{not json', '{"version":2,"buckets":[]}', '{"version":1,"buckets":[{"bucket":"a-b","region":"us-east-1"}]}', '{"version":1,"buckets":[{"bucket":"dup","region":"us-east-1","firstSeen":"2026-01-01T00:00:00Z"},{"bucket":"dup","region":"us-east-1","firstSeen":"2026-01-02T00:00:00Z"}]}']) {
      const double = new ConditionalDouble();
      double.objects.set(registryKey(''), { body, etag: '"x"' });
      const err = await coldStartAndRegister(double, configFor('bucket-one')).catch((e: unknown) => e);
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
    const reg = await coldStartAndRegister(double, config);
    expect(await reg.all()).toEqual([{ bucket: 'solo-bucket', region: 'us-east-1' }]);
    expect([double.heads, double.writes]).toEqual([0, 0]);
  });

  it('remove: refuses the current bucket, an unlisted one, and one its check objects to; removes the others', async () => {
    const double = new ConditionalDouble();
    for (const b of ['bucket-one', 'bucket-two', 'bucket-three']) await coldStartAndRegister(double, configFor(b));
    const config = configFor('bucket-three');
    const none = async () => undefined;
    await expect(removeRegistryEntry(double, config, { bucket: 'bucket-three' }, none)).rejects.toThrow(/current bucket.*never removed/);
    await expect(removeRegistryEntry(double, config, { bucket: 'bucket-nine' }, none)).rejects.toThrow(/not in the registry/);
    await expect(removeRegistryEntry(double, config, { bucket: 'bucket-one' }, async () => 'still holds segments')).rejects.toThrow(/still holds segments/);
    const writes = double.writes;
    const { removed, registry } = await removeRegistryEntry(double, config, { bucket: 'bucket-one' }, none);
    expect(removed).toEqual({ bucket: 'bucket-one', region: 'us-east-1' });
    expect(registry.buckets.map((b) => b.bucket)).toEqual(['bucket-two', 'bucket-three']);
    expect(double.writes).toBe(writes + 1);
  });

  it('a removal racing 20 registrations loses none of them (conditional writes both ways)', async () => {
    const double = new ConditionalDouble();
    for (const b of ['bucket-one', 'bucket-two']) await coldStartAndRegister(double, configFor(b));
    const names = Array.from({ length: 20 }, (_, i) => `racer-${i}`);
    for (const n of names) double.buckets.add(n);
    await Promise.all([
      removeRegistryEntry(double, configFor('bucket-two'), { bucket: 'bucket-one' }, async () => undefined, { sleep: fastSleep, maxAttempts: 50 }),
      ...names.map((n) => coldStartAndRegister(double, configFor(n), { sleep: fastSleep, maxAttempts: 50 })),
    ]);
    const doc = parseRegistry(double.objects.get(registryKey(''))!.body, 'test');
    expect(doc.buckets.map((b) => b.bucket).sort()).toEqual(['bucket-two', ...names].sort());
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
    for (const b of BUCKETS) await s3.send(new CreateBucketCommand({ Bucket: b }));
    const registries = await Promise.all(Array.from({ length: 50 }, (_, i) => coldStartAndRegister(store, configFor(BUCKETS[i % 5]!, env), { maxAttempts: 50, sleep: fastSleep })));
    const stored = await store.getSmall({ bucket: 'state-bucket', region: 'us-east-1' }, registryKey(''));
    const doc = parseRegistry(stored!.body, 'moto');
    expect(doc.buckets.map((b) => b.bucket).sort()).toEqual([...BUCKETS].sort());
    expect(registries).toHaveLength(50);
    expect(conflicts).toBeGreaterThan(0); // the races really happened, and conditional writes resolved them
  });
});
