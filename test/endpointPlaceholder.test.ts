/**
 * Acceptance 5: with S3_STORAGE_ENDPOINT_BASE=http://{bucket}.objects.test:<port>, every S3 request is addressed
 * to its own bucket's host (virtual-hosted style), never to the placeholder. Shown against the embedded server,
 * which routes by Host header, through a recording proxy on 127.0.0.1 (LogScale's HTTP_PROXY_* settings) that
 * dials `*.objects.test` on loopback and sees every tunnel and Host header: a two-bucket history (state bucket,
 * an old and a current bucket), an upload to each, a restore from the old one; the objects land in the right
 * buckets, read back with plain path-style requests.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/core/config.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { bypassesProxy } from '../src/core/proxyAgent.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { startRecordingProxy, type RecordingProxy } from './support/recordingProxy.ts';
import { patternBytes, patternStream } from './support/sourceData.ts';

const OLD = 'alpha-bucket';
const CURRENT = 'beta-bucket';
const STATE = 'gamma-state';
let servers: LocalServers;
let proxy: RecordingProxy;
let root: string;
let env: Record<string, string>;
let port: string;

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of [OLD, CURRENT, STATE]) servers.createBucket(b);
  proxy = await startRecordingProxy('.objects.test');
  port = new URL(servers.endpoint).port;
  root = await mkdtemp(join(tmpdir(), 'bks-endpoint-'));
  await Promise.all([mkdir(join(root, 'src')), mkdir(join(root, 'out'))]);
  const { S3_STORAGE_PATH_STYLE_ACCESS: _pathStyle, ...local } = servers.env();
  env = {
    ...local,
    S3_STORAGE_ENDPOINT_BASE: `http://{bucket}.objects.test:${port}`,
    HTTP_PROXY_HOST: '127.0.0.1',
    HTTP_PROXY_PORT: String(proxy.port),
    HTTP_PROXY_USERNAME: 'ops',
    HTTP_PROXY_PASSWORD: 'proxy-pass',
    S3_STORAGE_ENCRYPTION_KEY: 'endpoint-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ',
    S3_STORAGE_STATE_BUCKET: STATE,
    S3_STORAGE_SOURCE_ROOT: join(root, 'src'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'out'),
    LOG_LEVEL: 'ERROR',
  };
});
afterAll(async () => {
  await proxy?.stop();
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

async function source(id: string): Promise<string> {
  await pipeline(patternStream(70_000, id), createWriteStream(join(root, 'src', id)));
  return `file://${join(root, 'src', id)}`;
}

async function keysIn(bucket: string): Promise<string[]> {
  const direct = new S3Client({ region: servers.region, endpoint: servers.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const out = await direct.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((c) => c.Key ?? '').sort();
}

describe('{bucket} in S3_STORAGE_ENDPOINT_BASE', () => {
  it('each request reaches its bucket by its own host name', async () => {
    const old = await createRuntime({ ...env, S3_STORAGE_BUCKET: OLD });
    expect(await uploadSegment(old, { version: 1, dataspace: 'ep', segmentId: 'seg-old', source: await source('seg-old') })).toMatchObject({ outcome: 'uploaded', bucket: OLD });
    const current = await createRuntime({ ...env, S3_STORAGE_BUCKET: CURRENT });
    expect((await current.registry.all()).map((b) => b.bucket)).toEqual([OLD, CURRENT]);
    expect(await uploadSegment(current, { version: 1, dataspace: 'ep', segmentId: 'seg-new', source: await source('seg-new') })).toMatchObject({ outcome: 'uploaded', bucket: CURRENT });
    const restored = await fetchSegment(current, { dataspace: 'ep', segmentId: 'seg-old', destination: `file://${join(root, 'out', 'seg-old')}` });
    expect(restored).toMatchObject({ bucket: OLD, bytesWritten: 70_000 });
    expect(await readFile(join(root, 'out', 'seg-old'))).toEqual(patternBytes(70_000, 'seg-old'));

    // The objects are where the server put them by Host header.
    expect(await keysIn(OLD)).toEqual([formatSegmentKey('', { dataspace: 'ep', segmentId: 'seg-old' })]);
    expect(await keysIn(CURRENT)).toEqual([formatSegmentKey('', { dataspace: 'ep', segmentId: 'seg-new' })]);
    expect(await keysIn(STATE)).toEqual(['_bucket-storage/registry.json']);

    // Every tunnel went to a bucket's own host, with the proxy credentials; none to the placeholder.
    const targets = new Set(proxy.tunnels.map((t) => t.target));
    expect([...targets].sort()).toEqual([OLD, CURRENT, STATE].map((b) => `${b}.objects.test:${port}`).sort());
    for (const t of proxy.tunnels) expect(t.proxyAuthorization).toBe(`Basic ${Buffer.from('ops:proxy-pass').toString('base64')}`);
    // Inside the tunnels: each request names its bucket by Host, and its path no longer holds the bucket.
    expect(proxy.requests.length).toBeGreaterThanOrEqual(8);
    for (const r of proxy.requests) {
      const bucket = r.host.split('.')[0] ?? '';
      expect([OLD, CURRENT, STATE]).toContain(bucket);
      expect(r.host).toBe(`${bucket}.objects.test:${port}`);
      expect(r.line).not.toContain(`/${bucket}`);
    }
    expect(proxy.requests.some((r) => r.line.startsWith('PUT /') && r.host.startsWith(CURRENT))).toBe(true);
  });

  it('is refused outside the host name, and together with path-style addressing', () => {
    const base = { S3_STORAGE_BUCKET: 'b-1', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: 'off' };
    expect(() => loadConfig({ ...base, S3_STORAGE_ENDPOINT_BASE: 'https://objects.example.com/{bucket}' })).toThrow(/may stand once, in the host name/);
    expect(() => loadConfig({ ...base, S3_STORAGE_ENDPOINT_BASE: 'https://{bucket}.objects.example.com', S3_STORAGE_PATH_STYLE_ACCESS: 'true' })).toThrow(/S3_STORAGE_PATH_STYLE_ACCESS=true contradicts/);
  });
});

describe('the proxy', () => {
  it('NO_PROXY and loopback addresses are reached directly', () => {
    const noProxy = ['internal.example.com', '.svc.cluster', 'metadata:8080'];
    expect(bypassesProxy('127.0.0.1', 4566, [])).toBe(true);
    expect(bypassesProxy('localhost', 4566, [])).toBe(true);
    expect(bypassesProxy('s3.eu-west-1.amazonaws.com', 443, noProxy)).toBe(false);
    expect(bypassesProxy('internal.example.com', 443, noProxy)).toBe(true);
    expect(bypassesProxy('a.internal.example.com', 443, noProxy)).toBe(true);
    expect(bypassesProxy('notinternal.example.com', 443, noProxy)).toBe(false);
    expect(bypassesProxy('s3.svc.cluster', 80, noProxy)).toBe(true);
    expect(bypassesProxy('metadata', 8080, noProxy)).toBe(true);
    expect(bypassesProxy('metadata', 80, noProxy)).toBe(false);
    expect(bypassesProxy('anything', 1, ['*'])).toBe(true);
  });
});
