/**
 * Chaos: 500 uploads and 500 restores (whole and ranged) through a proxy that fails or breaks 10% of S3
 * requests (500, 503 SlowDown, connection reset mid-body, stall, response cut short). Every upload must store
 * exactly the source and every restore must return exactly the stored bytes: SDK retries absorb answered
 * faults (lib-storage buffers each part, so a part can be sent again), the object reader resumes broken bodies.
 */
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/core/runtime.ts';
import { fetchSegment } from '../../src/fetch/index.ts';
import { uploadSegment } from '../../src/upload/uploadSegment.ts';
import { startFaultProxy, type FaultProxy } from '../support/faultProxy.ts';
import { startHarness, type Harness } from '../support/fetchHarness.ts';
import { patternBytes } from '../support/sourceData.ts';
import { storeSegment } from '../support/storeSegment.ts';
import { recordChaos, scaled } from './summary.ts';

const RESTORES = 500;
const SEGMENTS = scaled(40, 20);

let h: Harness;
let proxy: FaultProxy;
let direct: Runtime;
let faulty: Runtime;

beforeAll(async () => {
  h = await startHarness('chaos-restores');
  direct = await h.runtime({ S3_STORAGE_CHUNK_LOG2: '16' });
  proxy = await startFaultProxy({
    target: h.servers.endpoint,
    seed: 42,
    stallMs: 300,
    rules: [{ match: () => true, kinds: ['status500', 'slowDown503', 'resetMidBody', 'cutShort', 'stall'], rate: 0.1 }],
  });
  faulty = await h.runtime({ S3_STORAGE_ENDPOINT_BASE: proxy.endpoint });
});
afterAll(async () => {
  await proxy?.stop();
  await h?.close();
});

describe('uploads under S3 faults', () => {
  it(`${RESTORES} uploads with 10% of S3 requests failing or broken all store exactly the source`, async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const srcRoot = await mkdtemp(join(tmpdir(), 'bks-chaos-sources-'));
    const uploader = await h.runtime({ S3_STORAGE_ENDPOINT_BASE: proxy.endpoint, S3_STORAGE_SOURCE_ROOT: srcRoot, S3_STORAGE_PART_SIZE_MIB: '5', S3_STORAGE_CHUNK_LOG2: '16' });
    const before = { ...proxy.counts };
    const sizeOf = (n: number) => (n % 50 === 0 ? 11 * 1024 * 1024 + n : 1 + ((n * 7919) % 200_000));
    let losses = 0;
    let next = 0;
    const worker = async () => {
      for (let n = next++; n < RESTORES; n = next++) {
        const path = join(srcRoot, `up-${n}`);
        const bytes = patternBytes(sizeOf(n), `up-${n}`);
        await writeFile(path, bytes);
        try {
          await uploadSegment(uploader, { version: 1, dataspace: 'chaos-up', segmentId: `up-${n}`, source: `file://${path}` });
          const dest = join(h.root, `check-${n}`);
          await fetchSegment(direct, { dataspace: 'chaos-up', segmentId: `up-${n}`, destination: `file://${dest}` });
          if (!(await readFile(dest)).equals(bytes)) losses++;
          await rm(dest, { force: true });
        } catch (err) {
          losses++;
          console.error(`upload ${n} failed: ${(err as Error).name}: ${(err as Error).message}`);
        }
        await rm(path, { force: true });
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const faults = Object.fromEntries(Object.entries(proxy.counts).filter(([k]) => k !== 'forwarded').map(([k, v]) => [k, v - (before[k as keyof typeof before] ?? 0)]));
    recordChaos({ scenario: 'uploads, 10% S3 faults', faults, retried: Object.values(faults).reduce((a, b) => a + b, 0), segmentsChecked: RESTORES, losses, foreignDeletions: 0 });
    expect(losses).toBe(0);
    expect(Object.values(faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(RESTORES / 10);
    await rm(srcRoot, { recursive: true, force: true });
  });
});

describe('restores under S3 faults', () => {
  it(`${RESTORES} restores of ${SEGMENTS} segments with 10% of S3 requests failing or broken all end correct`, async () => {
    const key = direct.keyRing.current;
    const segments: { id: string; size: number; seed: string; encrypted: boolean }[] = [];
    proxy.setEnabled(false);
    for (let i = 0; i < SEGMENTS; i++) {
      const size = [0, 1, 65535, 65537, 300_000, 2_500_000][i % 6] ?? 1;
      const seg = { id: `chaos-${i}`, size, seed: `seed-${i}`, encrypted: i % 4 !== 3 };
      await storeSegment(direct.store, h.bucket, { dataspace: 'chaos', segmentId: seg.id }, size, seg.seed, { key: seg.encrypted ? key : undefined, chunkLog2: 16 });
      segments.push(seg);
    }
    proxy.setEnabled(true);
    const before = { ...proxy.counts };

    let losses = 0;
    let checked = 0;
    const ctx = faulty;
    let next = 0;
    const worker = async () => {
      for (let n = next++; n < RESTORES; n = next++) {
        const seg = segments[n % segments.length]!;
        const bytes = patternBytes(seg.size, seg.seed);
        const ranged = n % 3 === 0 && seg.size > 10;
        const start = ranged ? (n * 7919) % seg.size : 0;
        const end = ranged ? Math.min(seg.size - 1, start + ((n * 104729) % 200_000)) : seg.size - 1;
        const path = join(h.root, `r-${n}`);
        const invocation = { dataspace: 'chaos', segmentId: seg.id, destination: `file://${path}`, ...(ranged ? { range: { start, end } } : {}) };
        const expected = seg.size === 0 ? Buffer.alloc(0) : bytes.subarray(start, end + 1);
        try {
          const answer = await fetchSegment(ctx, invocation);
          const written = await readFile(path);
          const ok = written.equals(expected) && answer.sha256 === createHash('sha256').update(expected).digest('hex');
          if (!ok) losses++;
        } catch (err) {
          losses++;
          console.error(`restore ${n} (${seg.id}, ${ranged ? `${start}-${end}` : 'whole'}) failed: ${(err as Error).name}: ${(err as Error).message}`);
        }
        checked++;
        await rm(path, { force: true });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const faults = Object.fromEntries(Object.entries(proxy.counts).filter(([k]) => k !== 'forwarded').map(([k, v]) => [k, v - (before[k as keyof typeof before] ?? 0)]));
    recordChaos({ scenario: 'restores, 10% S3 faults', faults, retried: Object.values(faults).reduce((a, b) => a + b, 0), segmentsChecked: checked, losses, foreignDeletions: 0 });
    expect(checked).toBe(RESTORES);
    expect(losses).toBe(0);
    expect(Object.values(faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(RESTORES / 10);
    expect(await h.rootEntries()).toEqual([]);
  });
});
