/**
 * Upload paths no other test reached, on the embedded server: an announcement of a segment already stored with
 * another size (or a damaged stored copy) is refused and never overwrites it; `s3://` staging sources; a
 * CompleteMultipartUpload whose answer was lost (fauxqs, as S3, answers the SDK's retry with NoSuchUpload).
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, LocationError, StorageError } from '../src/core/errors.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import type { BucketRef, S3Store } from '../src/core/s3Store.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment, type UploadRuntime } from '../src/upload/uploadSegment.ts';
import { startFaultProxy, type FaultProxy } from './support/faultProxy.ts';
import { patternBytes } from './support/sourceData.ts';

const BUCKET = 'untested-upload';
const STAGING = 'untested-staging';
let servers: LocalServers;
let root: string;
let runtime: Runtime;
let env: Record<string, string>;
let target: BucketRef;

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket(BUCKET);
  servers.createBucket(STAGING);
  root = await mkdtemp(join(tmpdir(), 'bks-untested-upload-'));
  env = { ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_ENCRYPTION_KEY: 'untested-upload-secret-0123456789abcdefghijklmnopqrstuvwxyz', S3_STORAGE_SOURCE_ROOT: root };
  runtime = await createRuntime(env);
  target = { bucket: BUCKET, region: servers.region };
});
afterAll(async () => {
  await servers?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

const announce = (segmentId: string, source: string, extra: { size?: number; sha256?: string } = {}) => ({ version: 1 as const, dataspace: 'up', segmentId, source, ...extra });
const keyOf = (segmentId: string) => formatSegmentKey('', { dataspace: 'up', segmentId });

async function objectDigest(rt: Runtime, ref: BucketRef, key: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of await rt.store.get(ref, key)) hash.update(c as Buffer);
  return hash.digest('hex');
}

async function restoreBytes(rt: Runtime, segmentId: string): Promise<Buffer> {
  const { fetchSegment } = await import('../src/fetch/fetchSegment.ts');
  const dest = join(root, `restored-${segmentId}`);
  await fetchSegment({ ...rt, config: { ...rt.config, restoreRoot: root } }, { dataspace: 'up', segmentId, destination: `file://${dest}` });
  const { readFile } = await import('node:fs/promises');
  const bytes = await readFile(dest);
  await rm(dest);
  return bytes;
}

describe('a segment already stored with another size is refused, never overwritten', () => {
  // Broken on purpose: checkStoredCopy without its size comparison acknowledges the second announcement as
  // "already-stored" (first case); without the stored-size check it acknowledges the damaged copy (second).
  it('same segment, a source of another size: IntegrityError naming both sizes; the stored object is unchanged', async () => {
    await writeFile(join(root, 'first'), patternBytes(5000, 'first'));
    await uploadSegment(runtime, announce('resized', `file://${join(root, 'first')}`));
    const before = await runtime.store.head(target, keyOf('resized'));
    const digest = await objectDigest(runtime, target, keyOf('resized'));

    await writeFile(join(root, 'second'), patternBytes(5001, 'second'));
    const writes: string[] = [];
    runtime.clients.s3().middlewareStack.add((next, c) => async (args) => (writes.push(c.commandName ?? ''), next(args)), { step: 'initialize', name: 'resizedWrites' });
    const err = await uploadSegment(runtime, announce('resized', `file://${join(root, 'second')}`)).catch((e: unknown) => e);
    runtime.clients.s3().middlewareStack.remove('resizedWrites');
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'size' });
    expect((err as Error).message).toMatch(/5000.*5001|another size/);
    expect((err as Error).message).toMatch(/never overwritten/);
    expect(writes.filter((c) => !c.startsWith('Head'))).toEqual([]);
    const after = await runtime.store.head(target, keyOf('resized'));
    expect(after?.etag).toBe(before?.etag);
    expect(await objectDigest(runtime, target, keyOf('resized'))).toBe(digest);
    expect((await restoreBytes(runtime, 'resized')).equals(patternBytes(5000, 'first'))).toBe(true);
  });

  it('a stored copy whose size disagrees with its own metadata (damaged): IntegrityError, left as it is', async () => {
    await writeFile(join(root, 'damaged-src'), patternBytes(7000, 'damaged'));
    await uploadSegment(runtime, announce('damaged', `file://${join(root, 'damaged-src')}`));
    const info = await runtime.store.head(target, keyOf('damaged'));
    const chunks: Buffer[] = [];
    for await (const c of await runtime.store.get(target, keyOf('damaged'))) chunks.push(c as Buffer);
    const cut = Buffer.concat(chunks).subarray(0, (info?.size ?? 0) - 10);
    await runtime.store.put(target, keyOf('damaged'), Readable.from([cut]), { metadata: { ...(info?.metadata ?? {}) }, partSize: 8 << 20, queueSize: 1 });
    const err = await uploadSegment(runtime, announce('damaged', `file://${join(root, 'damaged-src')}`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/damaged/);
    expect((await runtime.store.head(target, keyOf('damaged')))?.size).toBe(cut.length);
  });
});

describe('s3:// staging sources', () => {
  async function stage(key: string, bytes: Buffer): Promise<string> {
    await runtime.clients.s3().send(new PutObjectCommand({ Bucket: STAGING, Key: key, Body: bytes }));
    return `s3://${STAGING}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  // Broken on purpose: openSource's s3:// branch reading from another bucket than the URL names fails all three.
  it('an encrypted upload from a staging object (key with spaces and escapes) restores byte-exact', async () => {
    const bytes = patternBytes(9 * 1024 * 1024 + 3, 'staged');
    const url = await stage('incoming/node 7/seg #1', bytes);
    expect(url).toContain('node%207');
    const result = await uploadSegment(runtime, announce('staged', url, { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }));
    expect(result).toMatchObject({ outcome: 'uploaded', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect((await restoreBytes(runtime, 'staged')).equals(bytes)).toBe(true);
  });

  it('with encryption off (two passes over the source: digest, then upload) the object equals the staging object', async () => {
    const off = await createRuntime({ ...env, S3_STORAGE_ENCRYPTION_KEY: 'off' });
    const bytes = patternBytes(200_000, 'staged-plain');
    const url = await stage('incoming/plain', bytes);
    const gets: string[] = [];
    // Staging objects are read with the function's role.
    off.clients.s3AsRole().middlewareStack.add((next, c) => async (args) => (c.commandName === 'GetObjectCommand' && gets.push(c.commandName), next(args)), { step: 'initialize', name: 'stagedGets' });
    await uploadSegment(off, announce('staged-plain', url));
    off.clients.s3AsRole().middlewareStack.remove('stagedGets');
    expect(gets).toHaveLength(2);
    expect(await objectDigest(off, target, keyOf('staged-plain'))).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('a missing staging object is a LocationError naming it; a size that differs from the announcement an IntegrityError; nothing stored', async () => {
    const missing = await uploadSegment(runtime, announce('staged-missing', `s3://${STAGING}/incoming/none`)).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(LocationError);
    expect((missing as Error).message).toContain(`s3://${STAGING}/incoming/none`);
    const url = await stage('incoming/sized', patternBytes(1000, 'sized'));
    await expect(uploadSegment(runtime, announce('staged-sized', url, { size: 999 }))).rejects.toBeInstanceOf(IntegrityError);
    await expect(uploadSegment(runtime, announce('staged-sha', url, { sha256: 'b'.repeat(64) }))).rejects.toBeInstanceOf(IntegrityError);
    for (const id of ['staged-missing', 'staged-sized', 'staged-sha']) expect(await runtime.store.head(target, keyOf(id))).toBeUndefined();
  });
});

describe('a CompleteMultipartUpload whose answer was lost (fault proxy: done, then 500; the retry gets NoSuchUpload)', () => {
  const isComplete = (method: string, url: string) => method === 'POST' && /[?&]uploadId=/.test(url);
  async function losingRuntime(): Promise<{ proxy: FaultProxy; rt: Runtime }> {
    const proxy = await startFaultProxy({ target: servers.endpoint, maxFaults: 1, rules: [{ match: isComplete, kinds: ['answerLost'], rate: 1 }] });
    return { proxy, rt: await createRuntime({ ...env, S3_STORAGE_ENDPOINT_BASE: proxy.endpoint, S3_STORAGE_PART_SIZE_MIB: '5' }) };
  }

  // Broken on purpose: writeSegmentObject rethrowing every put error (no acceptLostCompletion) fails the first
  // case with StorageError NoSuchUpload; accepting without checking the object lets the second through.
  it('is accepted once the object is checked: uploaded and restorable byte-exact', async () => {
    const { proxy, rt } = await losingRuntime();
    const bytes = patternBytes(11 * 1024 * 1024, 'lost-answer');
    await writeFile(join(root, 'lost-answer'), bytes);
    const result = await uploadSegment(rt, announce('lost-answer', `file://${join(root, 'lost-answer')}`));
    await proxy.stop();
    // Encrypted, nothing announced: no plaintext SHA-256 is computed (the chunk tags are the integrity check),
    // so the result carries none; the restore below checks the bytes.
    expect(result).toMatchObject({ outcome: 'uploaded', size: bytes.length });
    expect(result.sha256).toBeUndefined();
    const completes = proxy.log.filter((r) => isComplete(r.method, r.url));
    expect(completes.map((r) => [r.fault, r.status])).toEqual([['answerLost', 500], [undefined, 404]]);
    expect((await restoreBytes(runtime, 'lost-answer')).equals(bytes)).toBe(true);
  });

  it('is refused when the object found is not the one written (its HEAD reports another plaintext size)', async () => {
    const { proxy, rt } = await losingRuntime();
    const lying: UploadRuntime = {
      ...rt,
      store: Object.assign(Object.create(rt.store) as S3Store, {
        async head(...args: Parameters<S3Store['head']>) {
          const info = await rt.store.head(...args);
          return info && { ...info, metadata: { ...info.metadata, 'bks-size': String(Number(info.metadata['bks-size'] ?? 0) + 1) } };
        },
      }),
    };
    await writeFile(join(root, 'lost-not-ours'), patternBytes(11 * 1024 * 1024, 'lost-not-ours'));
    const err = await uploadSegment(lying, announce('lost-not-ours', `file://${join(root, 'lost-not-ours')}`)).catch((e: unknown) => e);
    await proxy.stop();
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).cause).toMatchObject({ name: 'NoSuchUpload' });
  });
});
