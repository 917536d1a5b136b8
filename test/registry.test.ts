/**
 * A clean registry (issue 16, acceptance 3), on the embedded servers: `status`, `restore`, a fetch cold start and
 * a failed upload with an unregistered (mistyped) bucket name leave the registry as it was; only a successful
 * upload registers a bucket. `registry list` shows it; `registry remove` refuses a bucket that still holds
 * segments and the current bucket, and removes the others.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { registryKey } from '../src/core/objectKeys.ts';
import { createRuntime, resetRuntime, type Runtime } from '../src/core/runtime.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { sqsRecord } from '../src/local/lambdaEvents.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';

const STATE = { bucket: 'reg-state', region: 'us-east-1' };
let servers: LocalServers;
let root: string;
let env: Record<string, string>;
let rt: Runtime;

const registryText = async () => (await rt.store.getSmall(STATE, registryKey('')))?.body;
const registeredBuckets = async () => (JSON.parse((await registryText()) ?? '{"buckets":[]}') as { buckets: { bucket: string }[] }).buckets.map((b) => b.bucket);

async function cli(argv: string[], extra: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const code = await main(argv, { env: { ...env, ...extra }, stdout, stderr });
  return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of ['reg-a', 'reg-b', STATE.bucket]) servers.createBucket(b);
  root = await mkdtemp(join(tmpdir(), 'bks-registry-'));
  await Promise.all([mkdir(join(root, 'src')), mkdir(join(root, 'out'))]);
  await writeFile(join(root, 'src', 'seg-1'), 'registry test segment');
  env = {
    ...servers.env(),
    S3_STORAGE_BUCKET: 'reg-a',
    S3_STORAGE_ENCRYPTION_KEY: 'registry-test-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    S3_STORAGE_STATE_BUCKET: STATE.bucket,
    S3_STORAGE_SOURCE_ROOT: join(root, 'src'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'out'),
    LOG_LEVEL: 'ERROR',
  };
  rt = await createRuntime(env);
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

const announcement = { version: 1 as const, dataspace: 'reg', segmentId: 'seg-1', source: `file://${join('/', 'placeholder')}` };

describe('only a successful upload registers a bucket', () => {
  it('a cold start registers nothing; the first upload registers its bucket', async () => {
    expect(await registryText()).toBeUndefined();
    expect(rt.registry.currentRegistered).toBe(false);
    await uploadSegment(rt, { ...announcement, source: `file://${join(root, 'src', 'seg-1')}` });
    expect(await registeredBuckets()).toEqual(['reg-a']);
  });

  it('status, restore, a fetch cold start and a failed upload with a mistyped bucket leave the registry unchanged', async () => {
    const before = await registryText();
    const typo = { S3_STORAGE_BUCKET: 'reg-aa' };
    const status = await cli(['status'], typo);
    expect(status.code).toBe(0);
    // Shown as the current bucket, not registered (the registry is unchanged below).
    expect(status.stdout).toMatch(/^reg-aa +\S+ +\? +\? +current, not registered yet \(its first upload registers it\); unavailable: .*NoSuchBucket/m);
    const restore = await cli(['restore', '--dataspace', 'reg', '--segment', 'seg-1', '--to', join(root, 'out', 'by-cli')], typo);
    expect([restore.code, JSON.parse(restore.stdout).bucket]).toEqual([0, 'reg-a']);
    // The functions' cold starts, as Lambda runs them: the handler's runtime built from the process environment.
    Object.assign(process.env, env, typo);
    resetRuntime();
    const fetch = await import('../functions/fetch.ts');
    expect(await fetch.handler({ dataspace: 'reg', segmentId: 'seg-1', destination: `file://${join(root, 'out', 'by-fetch')}` }, lambdaContext('fetch'))).toMatchObject({ bucket: 'reg-a' });
    expect(await readFile(join(root, 'out', 'by-fetch'), 'utf8')).toBe('registry test segment');
    await writeFile(join(root, 'src', 'seg-2'), 'never stored');
    const upload = await import('../functions/upload.ts');
    const body = JSON.stringify({ ...announcement, segmentId: 'seg-2', source: `file://${join(root, 'src', 'seg-2')}` });
    expect(await upload.handler({ Records: [sqsRecord({ messageId: 'typo-1', body }, 'http://local/queue', servers.region)] }, lambdaContext('upload'))).toEqual({ batchItemFailures: [{ itemIdentifier: 'typo-1' }] });
    resetRuntime();
    expect(await registryText()).toBe(before);
    expect(await registeredBuckets()).toEqual(['reg-a']);
  });
});

describe('bucket-storage registry', () => {
  it('list shows the entries and whether the current bucket is registered', async () => {
    const listed = JSON.parse((await cli(['registry', 'list'], { S3_STORAGE_BUCKET: 'reg-b' })).stdout) as Record<string, unknown>;
    expect(listed).toMatchObject({ registry: `s3://${STATE.bucket}/_bucket-storage/registry.json`, current: { bucket: 'reg-b', registered: false }, buckets: [{ bucket: 'reg-a', current: false }] });
  });

  it('remove refuses the current bucket and a bucket that still holds segments; --force and empty buckets go', async () => {
    // reg-b becomes current and registered by an upload; a legacy entry for a bucket that never existed is added
    // the way an old cold start did it.
    const b = await createRuntime({ ...env, S3_STORAGE_BUCKET: 'reg-b' });
    await uploadSegment(b, { ...announcement, segmentId: 'seg-3', source: `file://${join(root, 'src', 'seg-1')}` });
    const doc = JSON.parse((await registryText())!) as { buckets: unknown[] };
    await rt.clients.s3().send(new PutObjectCommand({ Bucket: STATE.bucket, Key: registryKey(''), Body: JSON.stringify({ ...doc, buckets: [...doc.buckets, { bucket: 'reg-typo', region: 'us-east-1', firstSeen: '2026-01-01T00:00:00.000Z' }] }) }));
    const asB = { S3_STORAGE_BUCKET: 'reg-b' };
    expect(await registeredBuckets()).toEqual(['reg-a', 'reg-b', 'reg-typo']);

    const current = await cli(['registry', 'remove', 'reg-b'], asB);
    expect(current.code).toBe(1);
    expect(current.stderr).toMatch(/^bucket-storage registry: RegistryError: s3:\/\/reg-b is the current bucket/);
    const full = await cli(['registry', 'remove', 'reg-a'], asB);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/s3:\/\/reg-a still holds segment objects under the prefix \(e\.g\. [0-9a-f]{4}\/bks\/reg\/seg-1\).*--force/);
    expect(await registeredBuckets()).toEqual(['reg-a', 'reg-b', 'reg-typo']);

    const typo = await cli(['registry', 'remove', 'reg-typo'], asB);
    expect(typo.code).toBe(0);
    expect(JSON.parse(typo.stdout)).toMatchObject({ removed: { bucket: 'reg-typo' } });
    expect(await registeredBuckets()).toEqual(['reg-a', 'reg-b']);
    expect((await cli(['registry', 'remove', 'reg-a', '--force'], asB)).code).toBe(0);
    expect(await registeredBuckets()).toEqual(['reg-b']);
    expect((await cli(['registry', 'remove', 'reg-a'], asB)).stderr).toMatch(/not in the registry/);
    expect((await cli(['registry', 'frob'])).code).toBe(2);
  });
});
