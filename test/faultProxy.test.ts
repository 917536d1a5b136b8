import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
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
