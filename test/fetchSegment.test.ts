/** Whole restores on the embedded servers: round trips for every size class, key and format. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveKey } from '../src/core/keyRing.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { countRequests, CURRENT_SECRET, PREVIOUS_SECRET, startHarness, type Harness } from './support/fetchHarness.ts';
import { patternBytes } from './support/sourceData.ts';
import { storeSegment } from './support/storeSegment.ts';

const CHUNK_LOG2 = 16;
const CHUNK = 2 ** CHUNK_LOG2;
const MiB = 1024 * 1024;

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h.close());

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

type Mode = 'on' | 'off' | 'previous key' | 'plain object, encryption on' | 'v1 object, encryption off';

async function setUp(mode: Mode) {
  // A plain object is read while encryption is on only when it was written before encryption was turned on.
  const env: Record<string, string> =
    mode === 'off'
      ? { S3_STORAGE_ENCRYPTION_KEY: 'off' }
      : mode === 'v1 object, encryption off'
        ? { S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: CURRENT_SECRET }
        : mode === 'plain object, encryption on'
          ? { S3_STORAGE_PLAIN_OBJECTS_BEFORE: new Date(Date.now() + 3_600_000).toISOString() }
          : {};
  const runtime = await h.runtime(env);
  const key = mode === 'off' || mode === 'plain object, encryption on' ? undefined : await deriveKey(mode === 'previous key' ? PREVIOUS_SECRET : CURRENT_SECRET);
  return { runtime, key };
}

describe('whole restore round trip', () => {
  const modes: Mode[] = ['on', 'off', 'previous key', 'plain object, encryption on', 'v1 object, encryption off'];
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5];
  for (const mode of modes) {
    it.each(sizes)(`${mode}: %i bytes come back identical`, async (size) => {
      const { runtime, key } = await setUp(mode);
      const segmentId = `rt-${mode.replace(/[^a-z]+/g, '-')}-${size}`;
      const stored = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId }, size, segmentId, { key, chunkLog2: CHUNK_LOG2 });
      const target = join(h.root, segmentId);
      const answer = await fetchSegment(runtime, { dataspace: 'ds', segmentId, destination: `file://${target}` });
      expect(answer).toEqual({ bucket: h.bucket.bucket, region: h.bucket.region, key: stored.key, size, sha256: stored.sha256, bytesWritten: size });
      expect((await readFile(target)).equals(patternBytes(size, segmentId))).toBe(true);
      expect((await h.rootEntries()).filter((n) => n.startsWith('.'))).toEqual([]);
    });
  }

  it.each([
    ['on', 4],
    ['off', 1],
    ['previous key', 1],
  ] as const)('restores 300 MiB (%s, %i GET(s) in flight) identical, in order', async (mode, concurrency) => {
    const { runtime, key } = await setUp(mode);
    const size = 300 * MiB;
    const segmentId = `big-${concurrency}-${mode.replace(/ /g, '-')}`;
    const stored = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId }, size, segmentId, { key });
    const counter = countRequests(runtime.clients.s3());
    const target = join(h.root, segmentId);
    const answer = await fetchSegment(runtime, { dataspace: 'ds', segmentId, destination: `file://${target}` }, { concurrency, partSize: 8 * MiB });
    expect(answer).toEqual({ bucket: h.bucket.bucket, region: h.bucket.region, key: stored.key, size, sha256: stored.sha256, bytesWritten: size });
    expect((await stat(target)).size).toBe(size);
    expect(await sha256File(target)).toBe(stored.sha256);
    const gets = counter.requests.filter((r) => r.command === 'GetObjectCommand');
    if (concurrency === 1) {
      expect(gets).toEqual([{ command: 'GetObjectCommand', range: undefined }]);
    } else {
      // ciphertext = 300 MiB + 48 + 300 tags: 38 parts of 8 MiB, each a ranged GET, in order.
      expect(gets.length).toBe(Math.ceil((size + 48 + 300 * 16) / (8 * MiB)));
      expect(gets[0]?.range).toBe(`bytes=0-${8 * MiB - 1}`);
    }
    await runtime.store.deleteBatch(h.bucket, [stored.key]);
    await rm(target);
  });

  it('restores to s3:// (multipart) with the same answer', async () => {
    const { runtime, key } = await setUp('on');
    const size = 20 * MiB + 3;
    const stored = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'to-s3' }, size, 'to-s3', { key });
    const restored = { bucket: 'fetch-restored', region: h.bucket.region };
    h.servers.createBucket(restored.bucket);
    const answer = await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'to-s3', destination: `s3://${restored.bucket}/restored/to-s3` });
    expect(answer).toMatchObject({ size, sha256: stored.sha256, bytesWritten: size });
    const hash = createHash('sha256');
    for await (const chunk of await runtime.store.get(restored, 'restored/to-s3')) hash.update(chunk as Buffer);
    expect(hash.digest('hex')).toBe(stored.sha256);
    await runtime.store.deleteBatch(h.bucket, [stored.key]);
    await runtime.store.deleteBatch(restored, ['restored/to-s3']);
  });

  it('replaces an existing destination file only once the restore succeeded', async () => {
    const { runtime, key } = await setUp('on');
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'again' }, 1000, 'again', { key });
    const target = join(h.root, 'again');
    const invocation = { dataspace: 'ds', segmentId: 'again', destination: `file://${target}` };
    await fetchSegment(runtime, invocation);
    await fetchSegment(runtime, invocation);
    expect((await readFile(target)).equals(patternBytes(1000, 'again'))).toBe(true);
  });
});
