import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClients } from '../src/core/clients.ts';
import { loadConfig } from '../src/core/config.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { countAttempts, setRequestTimeout } from './support/clientHooks.ts';
import { startFaultProxy, type FaultProxy } from './support/faultProxy.ts';

let servers: LocalServers;
let proxy: FaultProxy;

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket('proxied');
  proxy = await startFaultProxy({
    target: servers.endpoint,
    seed: 7,
    stallMs: 50,
    rules: [{ match: () => true, kinds: ['status500', 'slowDown503', 'stall'], rate: 0.3 }],
  });
});
afterAll(async () => {
  await proxy.stop();
  await servers.stop();
});

describe('fault proxy', () => {
  it('injects answered faults that SDK retries absorb, and counts them', async () => {
    const s3 = new S3Client({ endpoint: proxy.endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 8, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 20; i++) {
      const body = randomBytes(1000 + i);
      bodies.set(`k${i}`, body);
      await s3.send(new PutObjectCommand({ Bucket: 'proxied', Key: `k${i}`, Body: body }));
    }
    for (const [key, body] of bodies) {
      const out = await s3.send(new GetObjectCommand({ Bucket: 'proxied', Key: key }));
      expect(Buffer.from(await out.Body!.transformToByteArray()).equals(body)).toBe(true);
    }
    expect(proxy.counts.status500 + proxy.counts.slowDown503).toBeGreaterThan(0);
    expect(proxy.counts.stall).toBeGreaterThan(0);
  });

  it('cuts a response short: the reader sees an error, never a short body taken as whole', async () => {
    const cut = await startFaultProxy({ target: servers.endpoint, rules: [{ match: (m) => m === 'GET', kinds: ['cutShort', 'resetMidBody'], rate: 1 }], seed: 3 });
    const s3 = new S3Client({ endpoint: cut.endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    await s3.send(new PutObjectCommand({ Bucket: 'proxied', Key: 'big', Body: randomBytes(1 << 20) }));
    for (let i = 0; i < 4; i++) {
      await expect(
        (async () => {
          const out = await s3.send(new GetObjectCommand({ Bucket: 'proxied', Key: 'big' }));
          return out.Body!.transformToByteArray();
        })(),
      ).rejects.toThrow();
    }
    expect(cut.counts.cutShort + cut.counts.resetMidBody).toBe(4);
    await cut.stop();
  });
});

describe('fault proxy: faults that can fail a request, and its request log', () => {
  const client = (endpoint: string, maxAttempts: number) => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });

  // Found a bug: the clients' requestTimeout only logged a warning (the handler's throwOnRequestTimeout was
  // unset), so a stalled request waited for the stall to end, however long; src/core/clients.ts now throws.
  it('a stall longer than the request timeout fails the attempt: the client gives up, the proxy counts it abandoned, the SDK retries', async () => {
    const stalling = await startFaultProxy({ target: servers.endpoint, stallMs: 3_000, maxFaults: 1, rules: [{ match: (m) => m === 'PUT', kinds: ['stall'], rate: 1 }] });
    // The project's own clients (src/core/clients.ts), with only the timeout shortened by the test hook.
    const config = loadConfig({ S3_STORAGE_BUCKET: 'proxied', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_ENDPOINT_BASE: stalling.endpoint, S3_STORAGE_PATH_STYLE_ACCESS: 'true', S3_STORAGE_ACCESSKEY: 'local', S3_STORAGE_SECRETKEY: 'local' });
    const s3 = createClients(config).s3();
    setRequestTimeout(s3, 500);
    const attempts = countAttempts(s3);
    const started = Date.now();
    await s3.send(new PutObjectCommand({ Bucket: 'proxied', Key: 'stalled', Body: randomBytes(300_000) }));
    expect(Date.now() - started).toBeLessThan(2_500); // it did not wait for the stall to end
    expect(stalling.counts).toMatchObject({ stall: 1, stallAbandoned: 1, forwarded: 1 });
    expect(attempts.retries).toBe(1);
    expect(stalling.log.filter((r) => r.method === 'PUT').map((r) => [r.fault, r.status])).toEqual([['stall', undefined], [undefined, 200]]);
    await stalling.stop();
  });

  it('a stall shorter than the request timeout is only a delay: nothing abandoned, no retry', async () => {
    const slow = await startFaultProxy({ target: servers.endpoint, stallMs: 200, maxFaults: 1, rules: [{ match: (m) => m === 'PUT', kinds: ['stall'], rate: 1 }] });
    const s3 = client(slow.endpoint, 3);
    const attempts = countAttempts(s3);
    await s3.send(new PutObjectCommand({ Bucket: 'proxied', Key: 'delayed', Body: 'x' }));
    expect(slow.counts).toMatchObject({ stall: 1, stallAbandoned: 0 });
    expect(attempts.retries).toBe(0);
    await slow.stop();
  });

  it('answerLost: the server did the work, the client sees a 500', async () => {
    const losing = await startFaultProxy({ target: servers.endpoint, maxFaults: 1, rules: [{ match: (m) => m === 'PUT', kinds: ['answerLost'], rate: 1 }] });
    const err = await client(losing.endpoint, 1).send(new PutObjectCommand({ Bucket: 'proxied', Key: 'lost-answer', Body: 'done anyway' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'InternalError', $metadata: { httpStatusCode: 500 } });
    const out = await client(servers.endpoint, 1).send(new GetObjectCommand({ Bucket: 'proxied', Key: 'lost-answer' }));
    expect(await out.Body!.transformToString()).toBe('done anyway');
    expect(losing.log.map((r) => [r.fault, r.status])).toEqual([['answerLost', 500]]);
    await losing.stop();
  });

  it('403 and 412 are answered as S3 answers them', async () => {
    const denying = await startFaultProxy({ target: servers.endpoint, seed: 1, rules: [{ match: (m) => m === 'PUT', kinds: ['status403'], rate: 1 }, { match: () => true, kinds: ['status412'], rate: 1 }] });
    const s3 = client(denying.endpoint, 1);
    await expect(s3.send(new PutObjectCommand({ Bucket: 'proxied', Key: 'denied', Body: 'x' }))).rejects.toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    await expect(s3.send(new GetObjectCommand({ Bucket: 'proxied', Key: 'denied' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    expect(denying.counts).toMatchObject({ status403: 1, status412: 1, forwarded: 0 });
    await denying.stop();
  });
});
