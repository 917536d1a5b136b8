/** Ranged restores: any range equals the slice of the source and costs exactly one GET of the computed span. */
import fc from 'fast-check';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveKey } from '../src/core/keyRing.ts';
import type { Runtime } from '../src/core/runtime.ts';
import { planRange } from '../src/core/format/index.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { countRequests, CURRENT_SECRET, startHarness, type Harness } from './support/fetchHarness.ts';
import { patternBytes } from './support/sourceData.ts';
import { storeSegment } from './support/storeSegment.ts';

const CHUNK_LOG2 = 16;
const SIZE = 5 * 2 ** CHUNK_LOG2 + 1234; // 6 chunks, the last one short

let h: Harness;
let runtime: Runtime;
let source: Buffer;
beforeAll(async () => {
  h = await startHarness();
  // The plain segment counts as written before encryption was turned on (README: plain objects while encryption is on).
  runtime = await h.runtime({ S3_STORAGE_PLAIN_OBJECTS_BEFORE: new Date(Date.now() + 3_600_000).toISOString() });
  source = patternBytes(SIZE, 'ranged');
  const key = await deriveKey(CURRENT_SECRET);
  await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'enc' }, SIZE, 'ranged', { key, chunkLog2: CHUNK_LOG2 });
  await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'plain' }, SIZE, 'ranged', { key: undefined });
});
afterAll(async () => h.close());

const rangeArb = fc
  .tuple(fc.integer({ min: 0, max: SIZE - 1 }), fc.integer({ min: 0, max: SIZE - 1 }))
  .map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }));
// Ranges at and around chunk boundaries, where an off-by-one would hide.
const boundaryArb = fc
  .tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: -1, max: 1 }), fc.integer({ min: 0, max: 3 * 2 ** CHUNK_LOG2 }))
  .map(([chunk, delta, length]) => {
    const start = Math.min(SIZE - 1, Math.max(0, chunk * 2 ** CHUNK_LOG2 + delta));
    return { start, end: Math.min(SIZE - 1, start + length) };
  });

describe.each(['enc', 'plain'] as const)('ranged restore of a %s segment', (segmentId) => {
  it('equals the slice of the source and costs one HEAD plus exactly one GET of the planned span', async () => {
    const counter = countRequests(runtime.clients.s3());
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(rangeArb, boundaryArb), async (range) => {
        counter.reset();
        const target = join(h.root, `${segmentId}-${run++}`);
        const answer = await fetchSegment(runtime, { dataspace: 'ds', segmentId, destination: `file://${target}`, range });
        const expected = source.subarray(range.start, range.end + 1);
        expect((await readFile(target)).equals(expected)).toBe(true);
        expect(answer.size).toBe(SIZE);
        expect(answer.bytesWritten).toBe(expected.length);
        const span = segmentId === 'enc' ? planRange(SIZE, CHUNK_LOG2, range.start, range.end) : { cipherStart: range.start, cipherEnd: range.end };
        expect(counter.requests).toEqual([
          { command: 'HeadObjectCommand', range: undefined },
          { command: 'GetObjectCommand', range: `bytes=${span.cipherStart}-${span.cipherEnd}` },
        ]);
        await rm(target);
      }),
      { numRuns: 40, seed: 4 },
    );
  });
});

describe('ranged restore answers', () => {
  it('reports the sha256 of the bytes written', async () => {
    const target = join(h.root, 'sha');
    const answer = await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'enc', destination: `file://${target}`, range: { start: 10, end: 70_000 } });
    const { createHash } = await import('node:crypto');
    expect(answer.sha256).toBe(createHash('sha256').update(source.subarray(10, 70_001)).digest('hex'));
  });
});
