/**
 * The registry's pure logic, with in-memory stores: how a registry document is parsed and what its errors say,
 * how a conditional write retries (only lost races, with a capped back-off, a bounded number of times), what a
 * removal refuses, and how other prefixes' registries are found and reported. Written for the survivors of the
 * mutation run `registry` (docs/MUTATION.md).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ListedBucketRegistry, parseRegistry, readRegistry, registryLocation, SingleBucketRegistry, type RegistryDocument } from '../src/core/bucketRegistry.ts';
import { loadConfig, type Config } from '../src/core/config.ts';
import { RegistryError, StorageError } from '../src/core/errors.ts';
import { logger } from '../src/core/logger.ts';
import { registryKey } from '../src/core/objectKeys.ts';
import { findOtherRegistries, otherRegistries, reportOtherPrefixes } from '../src/core/otherPrefixes.ts';
import { removeRegistryEntry, updateRegistry, withBucket } from '../src/core/registryWrites.ts';
import type { BucketRef } from '../src/core/s3Store.ts';
import { thrown } from './support/thrown.ts';

const STATE: BucketRef = { bucket: 'state-bucket', region: 'us-east-1' };
const config = (extra: Record<string, string> = {}): Config =>
  loadConfig({ S3_STORAGE_BUCKET: 'bucket-new', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: STATE.bucket, AWS_REGION: 'us-east-1', ...extra });
const at = registryLocation(config());
if (at === undefined) throw new Error('the test configuration has a state bucket');
const entry = (bucket: string, region = 'us-east-1') => ({ bucket, region, firstSeen: '2026-01-01T00:00:00.000Z' });
const doc = (...buckets: ReturnType<typeof entry>[]): RegistryDocument => ({ version: 1, buckets });
const denied = () => new StorageError('PutObject', STATE.bucket, at.key, 'PutObject failed: AccessDenied 403', { retryable: false, httpStatus: 403 });
const raced = (status: 409 | 412) => new StorageError('PutObject', STATE.bucket, at.key, `PutObject failed: ${status}`, { retryable: false, httpStatus: status });

/** One stored registry; each put either fails with the next scripted error or stores the body. */
class RegistryDouble {
  body: string | undefined;
  etag = 0;
  puts = 0;
  readonly failures: unknown[];
  constructor(stored?: RegistryDocument, failures: unknown[] = []) {
    this.body = stored === undefined ? undefined : JSON.stringify(stored);
    this.failures = failures;
  }
  async getSmall() {
    return this.body === undefined ? undefined : { body: this.body, etag: `"${this.etag}"` };
  }
  async putSmall(_ref: BucketRef, _key: string, body: string | Buffer) {
    this.puts++;
    if (this.failures.length > 0) throw this.failures.shift();
    this.body = String(body);
    return `"${++this.etag}"`;
  }
  get doc(): RegistryDocument | undefined {
    return this.body === undefined ? undefined : (JSON.parse(this.body) as RegistryDocument);
  }
}

afterEach(() => vi.restoreAllMocks());

describe('registries in memory', () => {
  it('without a state bucket the current bucket is registered, searched and cleaned alone', async () => {
    const single = new SingleBucketRegistry({ bucket: 'only', region: 'eu-west-1' });
    expect(single.currentRegistered).toBe(true);
    expect(await single.searchOrder()).toEqual([{ bucket: 'only', region: 'eu-west-1' }]);
    expect(await single.all()).toEqual([{ bucket: 'only', region: 'eu-west-1' }]);
  });

  it('a listed registry is fresh only when told so; a bucket name in another region is another bucket', async () => {
    const current = { bucket: 'logs', region: 'eu-west-1' };
    const listed = new ListedBucketRegistry(current, [{ bucket: 'logs', region: 'us-east-1' }]);
    expect(listed.fresh).toBe(false);
    expect(new ListedBucketRegistry(current, [], true).fresh).toBe(true);
    expect(listed.currentRegistered).toBe(false);
    expect(await listed.searchOrder()).toEqual([current, { bucket: 'logs', region: 'us-east-1' }]);
    expect(withBucket(doc(entry('logs')), current, new Date('2026-02-01T00:00:00Z'))?.buckets).toEqual([entry('logs'), { ...current, firstSeen: '2026-02-01T00:00:00.000Z' }]);
  });
});

describe('parsing a stored registry', () => {
  it('text that is not JSON is named as such, with the parser error as cause', () => {
    const err = thrown(() => parseRegistry('{"version": 1,', 'registry s3://state/key'), RegistryError);
    expect(err.message).toMatch(/^registry s3:\/\/state\/key is not JSON \(.+\); it was damaged or edited by hand/);
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it('a field that is wrong is named by its path and what is wrong with it', () => {
    const err = thrown(() => parseRegistry(JSON.stringify(doc(entry('ok-bucket'), { ...entry('bad-bucket'), region: 'Not A Region' })), 'registry X'), RegistryError);
    expect(err.message).toContain('registry X is not a valid registry: buckets.1.region is not a region; restore it');
    expect(err.cause).toMatchObject({ issues: [expect.objectContaining({ path: ['buckets', 1, 'region'] })] });
  });

  it('a problem of the whole document is named as the document', () => {
    const err = thrown(() => parseRegistry(JSON.stringify(doc(entry('twice'), entry('twice'))), 'registry X'), RegistryError);
    expect(err.message).toContain('registry X is not a valid registry: (document) lists a bucket twice; restore it');
  });

  it('a registry that cannot be read names the state bucket right to check, with the cause', async () => {
    const cause = new Error('AccessDenied 403');
    const failing = { getSmall: () => Promise.reject(cause) };
    const err = await readRegistry(failing, at).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ message: `${at.where} cannot be read (AccessDenied 403); check S3_STORAGE_STATE_BUCKET and the role's s3:GetObject right on it`, cause });
  });
});

describe('conditional writes', () => {
  const append = (bucket: string) => (d: RegistryDocument | undefined) => withBucket(d, { bucket, region: 'us-east-1' }, new Date('2026-03-01T00:00:00Z'));

  it('a refused write (403) is a RegistryError at once, naming the right to check; no retry', async () => {
    const store = new RegistryDouble(doc(entry('old')), [denied()]);
    const sleep = vi.fn(async () => undefined);
    const err = await updateRegistry(store, at, append('new'), { sleep }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ message: `${at.where} cannot be written (PutObject failed: AccessDenied 403); check the role's s3:PutObject right on it` });
    expect((err as Error).cause).toBeInstanceOf(StorageError);
    expect(store.puts).toBe(1);
    expect(sleep).not.toHaveBeenCalled();
    expect(store.doc).toEqual(doc(entry('old')));
  });

  it('something thrown that is not an Error is named as it is', async () => {
    const store = new RegistryDouble(undefined, ['socket hang up']);
    await expect(updateRegistry(store, at, append('new'), { sleep: async () => undefined })).rejects.toThrow(`${at.where} cannot be written (socket hang up)`);
  });

  it('our own typed errors pass through unwrapped', async () => {
    const own = new RegistryError('already explained');
    const store = new RegistryDouble(undefined, [own]);
    await expect(updateRegistry(store, at, append('new'), { sleep: async () => undefined })).rejects.toBe(own);
  });

  it('a lost race (412, or 409 ConditionalRequestConflict) reads again and retries', async () => {
    for (const status of [412, 409] as const) {
      const store = new RegistryDouble(doc(entry('old')), [raced(status)]);
      const next = await updateRegistry(store, at, append('new'), { sleep: async () => undefined });
      expect(next?.buckets.map((b) => b.bucket)).toEqual(['old', 'new']);
      expect(store.puts).toBe(2);
    }
  });

  it('the default back-off waits, then the write lands', async () => {
    const store = new RegistryDouble(undefined, [raced(412)]);
    expect((await updateRegistry(store, at, append('new')))?.buckets.map((b) => b.bucket)).toEqual(['new']);
    expect(store.puts).toBe(2);
  });

  it('races lost maxAttempts times end in a RegistryError after exactly that many writes', async () => {
    const store = new RegistryDouble(undefined, Array.from({ length: 10 }, () => raced(412)));
    const sleep = vi.fn(async () => undefined);
    const err = await updateRegistry(store, at, append('new'), { sleep, maxAttempts: 3 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: `${at.where}: lost the race to update it 3 times; try again` });
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).cause).toBeInstanceOf(StorageError);
    expect(store.puts).toBe(3);
    expect(sleep).toHaveBeenCalledTimes(2);
  });

  it('the back-off is jittered, doubles from 100 ms and is capped at 2 s', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const store = new RegistryDouble(undefined, Array.from({ length: 7 }, () => raced(412)));
    const waits: number[] = [];
    await updateRegistry(store, at, append('new'), { sleep: async (ms) => void waits.push(ms), maxAttempts: 8 });
    expect(waits).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
  });
});

describe('removing a bucket from the registry', () => {
  const none = async () => undefined;

  it('needs a state bucket', async () => {
    const unset = loadConfig({ S3_STORAGE_BUCKET: 'bucket-new', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', AWS_REGION: 'us-east-1' });
    await expect(removeRegistryEntry(new RegistryDouble(), unset, { bucket: 'old' }, none)).rejects.toThrow('S3_STORAGE_STATE_BUCKET is not set: there is no registry to remove a bucket from');
  });

  it('the current bucket is refused also when named with its region', async () => {
    const store = new RegistryDouble(doc(entry('old'), entry('bucket-new')));
    await expect(removeRegistryEntry(store, config(), { bucket: 'bucket-new', region: 'us-east-1' }, none)).rejects.toThrow('s3://bucket-new is the current bucket (S3_STORAGE_BUCKET): it is never removed');
    expect(store.puts).toBe(0);
  });

  it('the current bucket name in another region is another bucket: it may be removed', async () => {
    const store = new RegistryDouble(doc(entry('bucket-new', 'eu-west-1'), entry('bucket-new')));
    const { removed, registry } = await removeRegistryEntry(store, config(), { bucket: 'bucket-new', region: 'eu-west-1' }, none);
    expect(removed).toEqual({ bucket: 'bucket-new', region: 'eu-west-1' });
    expect(registry).toEqual(doc(entry('bucket-new')));
  });

  it('a name listed in several regions needs --region; with it, only that entry goes', async () => {
    const store = new RegistryDouble(doc(entry('old', 'us-east-1'), entry('old', 'eu-west-1')));
    await expect(removeRegistryEntry(store, config(), { bucket: 'old' }, none)).rejects.toThrow('s3://old is listed in several regions (us-east-1, eu-west-1); say which with --region');
    const { registry } = await removeRegistryEntry(store, config(), { bucket: 'old', region: 'eu-west-1' }, none);
    expect(registry).toEqual(doc(entry('old', 'us-east-1')));
  });

  it('an unlisted bucket is named with the region asked for', async () => {
    const store = new RegistryDouble(doc(entry('old')));
    await expect(removeRegistryEntry(store, config(), { bucket: 'old', region: 'eu-west-1' }, none)).rejects.toThrow(`s3://old (eu-west-1) is not in the ${at.where}`);
  });

  it('an entry that leaves the registry between the check and the write is reported, nothing written', async () => {
    const store = new RegistryDouble(doc(entry('old'), entry('other')));
    const meanwhile = async () => {
      store.body = JSON.stringify(doc(entry('other')));
      return undefined;
    };
    await expect(removeRegistryEntry(store, config(), { bucket: 'old' }, meanwhile)).rejects.toThrow(`s3://old left the ${at.where} meanwhile; nothing to do`);
    expect(store.puts).toBe(0);
  });
});

describe("other prefixes' registries", () => {
  /** A state bucket listing: the prefixes holding bucket-storage state, and the keys under each. */
  const stateListing = (keys: readonly string[]) => ({
    commonPrefixes: async () => [...new Set(keys.map((k) => k.slice(0, k.indexOf('_bucket-storage/') + '_bucket-storage/'.length)))],
    async *list(_ref: BucketRef, prefix: string) {
      yield keys.filter((k) => k.startsWith(prefix)).map((key) => ({ key, size: 1, etag: undefined, lastModified: undefined }));
    },
  });

  it('names the registries of other prefixes only: not its own, not a prefix with state but no registry', async () => {
    const store = stateListing([registryKey(''), registryKey('old/'), `${registryKey('mine/')}`, 'marks-only/_bucket-storage/marks/x.json', `${registryKey('near/')}.bak`]);
    expect(await otherRegistries(store, STATE, 'mine/')).toEqual([`s3://state-bucket/${registryKey('')}`, `s3://state-bucket/${registryKey('old/')}`]);
  });

  it('finds nothing without a state bucket, and logs (not fails) when the state bucket cannot be listed', async () => {
    const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
    const unlistable = { commonPrefixes: () => Promise.reject(new Error('AccessDenied')), list: stateListing([]).list };
    expect(await findOtherRegistries(unlistable, { stateBucket: undefined, awsRegion: 'us-east-1', keyPrefix: '' })).toEqual([]);
    expect(info).not.toHaveBeenCalled();
    expect(await findOtherRegistries(unlistable, { stateBucket: 'state-bucket', awsRegion: 'us-east-1', keyPrefix: '' })).toEqual([]);
    expect(info).toHaveBeenCalledWith('could not list the state bucket for registries of other prefixes (s3:ListBucket on it)', expect.anything());
    expect(await findOtherRegistries(stateListing([registryKey('old/')]), { stateBucket: 'state-bucket', awsRegion: 'us-east-1', keyPrefix: 'new/' })).toEqual([
      `s3://state-bucket/${registryKey('old/')}`,
    ]);
  });

  it('warns while this prefix has no registry yet, informs once it has one, says nothing when alone', () => {
    const warn = vi.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
    const current = { bucket: 'b', region: 'us-east-1' };
    const others = ['s3://state/a/_bucket-storage/registry.json', 's3://state/b/_bucket-storage/registry.json'];
    reportOtherPrefixes('new/', new ListedBucketRegistry(current, [], false), []);
    expect(warn).not.toHaveBeenCalled();
    expect(info).not.toHaveBeenCalled();
    reportOtherPrefixes('new/', new ListedBucketRegistry(current, [], true), others);
    expect(warn).toHaveBeenCalledTimes(1);
    const [message, fields] = warn.mock.calls[0] ?? [];
    expect(message).toMatch(/^no registry exists yet for this prefix \(a fresh virtual bucket; its first upload creates it\)\. S3_STORAGE_OBJECT_KEY_PREFIX "new\/" is a virtual bucket of its own/);
    expect(message).toContain(`Other prefixes have registries in the state bucket: ${others[0]}, ${others[1]}. If this cluster used one of them before`);
    expect(fields).toEqual({ prefix: 'new/', otherRegistries: others });
    reportOtherPrefixes('new/', new ListedBucketRegistry(current, [current], false), others);
    expect(info).toHaveBeenCalledWith(expect.stringMatching(/^S3_STORAGE_OBJECT_KEY_PREFIX "new\/" is a virtual bucket of its own/), { prefix: 'new/', otherRegistries: others });
    reportOtherPrefixes('new/', new SingleBucketRegistry(current), others);
    expect(info).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});

