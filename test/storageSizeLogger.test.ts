/**
 * The cleanup's bucket storage size logger: at most once per interval, durable across cold starts (its state
 * is in the state bucket), bounded in time (a listing that does not fit resumes in the next run, counting each
 * object once), and off with BUCKET_STORAGE_SIZE_LOGGER_ENABLED=false.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logStorageSize, sizeLogStateFor } from '../src/cleanup/storageSizeLogger.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';

let servers: LocalServers;
let env: Record<string, string>;
const OBJECTS = 1_100; // two listing pages

/** A clock that moves `step` ms at every reading. */
function steppingClock(start: number, step: number): () => number {
  let t = start - step;
  return () => (t += step);
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of ['size-old', 'size-current', 'size-state']) servers.createBucket(b);
  env = { ...servers.env(), S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: 'size-state', LOG_LEVEL: 'ERROR' };
  await createRuntime({ ...env, S3_STORAGE_BUCKET: 'size-old' });
  env = { ...env, S3_STORAGE_BUCKET: 'size-current' };
  const s3 = (await createRuntime(env)).clients.s3();
  // 50 at a time: a shared machine's loaded server times out connections when all go at once.
  for (let i = 0; i < OBJECTS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, OBJECTS - i) }, (_, j) => s3.send(new PutObjectCommand({ Bucket: 'size-old', Key: formatSegmentKey('', { dataspace: 'sz', segmentId: `s-${i + j}` }), Body: 'abc' }))));
  }
  await s3.send(new PutObjectCommand({ Bucket: 'size-current', Key: formatSegmentKey('', { dataspace: 'sz', segmentId: 'new' }), Body: Buffer.alloc(1000) }));
}, 120_000);
afterAll(async () => {
  await servers?.stop();
});

const log = async (runtime: Runtime, budgetMs: number, now: () => number) => logStorageSize(runtime, sizeLogStateFor(runtime), { budgetMs, now });

describe('bucket storage size logger', () => {
  it('stops at its time budget, resumes after a cold start, logs once, then not again within the interval', async () => {
    const t0 = Date.parse('2026-11-29T10:00:00Z');
    // The budget runs out after the first page: the old bucket is left half listed.
    const first = await log(await createRuntime(env), 15_000, steppingClock(t0, 10_000));
    expect(first).toEqual({ status: 'measuring', pending: ['size-old', 'size-current'] });

    // A new container: the state bucket remembers where the listing stopped.
    const second = await log(await createRuntime(env), 60_000, steppingClock(t0 + 300_000, 1));
    expect(second).toEqual({
      status: 'logged',
      buckets: [
        { bucket: 'size-old', region: servers.region, objects: OBJECTS, bytes: 3 * OBJECTS, complete: true },
        { bucket: 'size-current', region: servers.region, objects: 1, bytes: 1000, complete: true },
      ],
    });
    expect(await log(await createRuntime(env), 60_000, steppingClock(t0 + 600_000, 1))).toEqual({ status: 'not-due' });
    // An hour after it logged, it measures again.
    expect(await log(await createRuntime(env), 60_000, steppingClock(t0 + 300_000 + 3_601_000, 1))).toMatchObject({ status: 'logged' });
  });

  it('is off with BUCKET_STORAGE_SIZE_LOGGER_ENABLED=false; follows BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES', async () => {
    expect(await log(await createRuntime({ ...env, BUCKET_STORAGE_SIZE_LOGGER_ENABLED: 'false' }), 60_000, Date.now)).toEqual({ status: 'disabled' });
    const every5 = { ...env, BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES: '5', S3_STORAGE_OBJECT_KEY_PREFIX: 'five' };
    const t = Date.parse('2026-11-30T10:00:00Z');
    expect(await log(await createRuntime(every5), 60_000, steppingClock(t, 1))).toMatchObject({ status: 'logged' });
    expect(await log(await createRuntime(every5), 60_000, steppingClock(t + 240_000, 1))).toEqual({ status: 'not-due' });
    expect(await log(await createRuntime(every5), 60_000, steppingClock(t + 301_000, 1))).toMatchObject({ status: 'logged' });
  });
});
