/**
 * Chaos: 500 uploads, a cleanup of a fifth of them, and 500 restores (whole and ranged), all through a proxy
 * that fails or breaks 10% of S3 requests: 500 InternalError, 503 SlowDown, connection reset mid-body,
 * response cut short, and stalls longer than the request timeout the test gives the clients (so a stall fails
 * its attempt; the proxy counts the attempts the clients gave up on). Every upload must store exactly the
 * source, the cleanup must delete exactly the announced segments (a seeded set of other clusters' keys and
 * foreign objects is listed before and after), and every restore must return exactly the stored bytes.
 *
 * Counted, not assumed: retries from the SDK's $metadata.attempts plus the GETs the object reader resumed;
 * segments checked by the SHA-256 of their restored bytes; foreign deletions by listing the bucket.
 */
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCleanupOnce } from '../../src/cleanup/runCleanup.ts';
import { formatSegmentKey } from '../../src/core/objectKeys.ts';
import type { Runtime } from '../../src/core/runtime.ts';
import type { S3Store } from '../../src/core/s3Store.ts';
import type { QueuePair } from '../../src/local/embeddedServers.ts';
import { fetchSegment } from '../../src/fetch/index.ts';
import { uploadSegment } from '../../src/upload/uploadSegment.ts';
import { countAttempts, setRequestTimeout } from '../support/clientHooks.ts';
import { startFaultProxy, type FaultProxy, type ProxyCounts } from '../support/faultProxy.ts';
import { startHarness, type Harness } from '../support/fetchHarness.ts';
import { patternBytes } from '../support/sourceData.ts';
import { storeSegment } from '../support/storeSegment.ts';
import { ContentChecks, ForeignKeys } from './observe.ts';
import { recordChaos, scaled } from './summary.ts';

const RESTORES = 500;
const UPLOADS = 500;
const SEGMENTS = scaled(40, 20);
/** The request timeout the test gives its clients (production: 120 s), and a stall well past it. */
const REQUEST_TIMEOUT_MS = 1_500;
const STALL_MS = 4_000;

let h: Harness;
let proxy: FaultProxy;
let direct: Runtime;
let faulty: Runtime;
let deletions: QueuePair;

beforeAll(async () => {
  h = await startHarness('chaos-restores');
  deletions = h.servers.createQueue('chaos-deletions', { maxReceiveCount: 50, visibilityTimeoutSeconds: 2 });
  direct = await h.runtime({ S3_STORAGE_CHUNK_LOG2: '16' });
  proxy = await startFaultProxy({
    target: h.servers.endpoint,
    seed: 42,
    stallMs: STALL_MS,
    rules: [{ match: () => true, kinds: ['status500', 'slowDown503', 'resetMidBody', 'cutShort', 'stall'], rate: 0.1 }],
  });
  // A quarter of the stored segments are plain objects, written (as if) before encryption was turned on.
  faulty = await h.runtime({ S3_STORAGE_ENDPOINT_BASE: proxy.endpoint, S3_STORAGE_PLAIN_OBJECTS_BEFORE: new Date(Date.now() + 3_600_000).toISOString() });
  setRequestTimeout(faulty.clients.s3(), REQUEST_TIMEOUT_MS);
});
afterAll(async () => {
  await proxy?.stop();
  await h?.close();
});

/** Faults injected since `before`, by kind, and the stalls the clients gave up on (observed by the proxy). */
function faultsSince(before: ProxyCounts): Record<string, number> {
  const now = proxy.counts;
  return {
    status500: now.status500 - before.status500,
    slowDown503: now.slowDown503 - before.slowDown503,
    resetMidBody: now.resetMidBody - before.resetMidBody,
    cutShort: now.cutShort - before.cutShort,
    stall: now.stall - before.stall,
    'stall timed out': now.stallAbandoned - before.stallAbandoned,
  };
}
const injected = (f: Record<string, number>) => Object.entries(f).filter(([k]) => k !== 'stall timed out').reduce((s, [, v]) => s + v, 0);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Runs `task(n)` for n = 0..count-1 with `workers` in parallel. */
async function inParallel(count: number, workers: number, task: (n: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let n = next++; n < count; n = next++) await task(n);
  }));
}

describe('uploads and a cleanup under S3 faults', () => {
  it(`${UPLOADS} uploads, then a cleanup of every 5th, with 10% of S3 requests failing, broken or stalled past the timeout: the rest stored exactly, the announced gone, nothing foreign touched`, async () => {
    const srcRoot = await mkdtemp(join(tmpdir(), 'bks-chaos-sources-'));
    const uploader = await h.runtime({ S3_STORAGE_ENDPOINT_BASE: proxy.endpoint, S3_STORAGE_SOURCE_ROOT: srcRoot, S3_STORAGE_PART_SIZE_MIB: '5', S3_STORAGE_CHUNK_LOG2: '16', S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url, S3_STORAGE_DELETION_DELAY_HOURS: '0' });
    setRequestTimeout(uploader.clients.s3(), REQUEST_TIMEOUT_MS);
    const attempts = countAttempts(uploader.clients.s3());
    const before = { ...proxy.counts };
    const sizeOf = (n: number) => (n % 50 === 0 ? 11 * 1024 * 1024 + n : 1 + ((n * 7919) % 200_000));
    const id = (n: number) => `up-${n}`;
    let failedUploads = 0;
    await inParallel(UPLOADS, 4, async (n) => {
      const path = join(srcRoot, id(n));
      await writeFile(path, patternBytes(sizeOf(n), id(n)));
      try {
        await uploadSegment(uploader, { version: 1, dataspace: 'chaos-up', segmentId: id(n), source: `file://${path}` });
      } catch (err) {
        failedUploads++;
        console.error(`upload ${n} failed: ${(err as Error).name}: ${(err as Error).message}`);
      }
      await rm(path, { force: true });
    });

    // Cleanup through the same faults: every 5th segment announced for deletion, beside seeded foreign keys.
    const deleted = new Set(Array.from({ length: UPLOADS }, (_, n) => n).filter((n) => n % 5 === 0));
    const seeded = await ForeignKeys.seed(direct.clients.s3(), h.bucket.bucket, 'chaos-up', [...deleted].map(id));
    const bodies = [...deleted].map((n) => JSON.stringify({ version: 1, dataspace: 'chaos-up', segmentId: id(n) }));
    for (let i = 0; i < bodies.length; i += 10) {
      await direct.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: deletions.url, Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })) }));
    }
    let completed = 0;
    let cleanupRuns = 0;
    // Runs as scheduled until every message is marked and no mark is left: a mark whose claim or deletions
    // failed (a broken GET of the mark, a refused key) is carried out by a later run.
    const marksLeft = async () => (await direct.deletions.all()).length;
    for (; cleanupRuns < 20 && (completed < bodies.length || (await marksLeft()) > 0); cleanupRuns++) {
      // Messages whose mark could not be written come back after the visibility timeout, for the next run; it is
      // longer than a run's receiving, so no run receives a message twice.
      const report = await runCleanupOnce(uploader, { budgetMs: 120_000, visibilityTimeoutSeconds: 10, waitTimeSeconds: 1 });
      completed += report.completed;
      if (completed < bodies.length) await new Promise((r) => setTimeout(r, 10_100));
    }
    const faults = faultsSince(before);
    attempts.stop();
    const foreignGone = await seeded.missing();

    // Every segment: the deleted ones gone, the others restored (directly) and their content hashed.
    const checks = new ContentChecks();
    let deletionsMissed = 0;
    await inParallel(UPLOADS, 4, async (n) => {
      if (deleted.has(n)) {
        if ((await direct.store.head(h.bucket, formatSegmentKey('', { dataspace: 'chaos-up', segmentId: id(n) }))) !== undefined) deletionsMissed++;
        return;
      }
      const dest = join(h.root, `check-${n}`);
      try {
        await fetchSegment(direct, { dataspace: 'chaos-up', segmentId: id(n), destination: `file://${dest}` });
        await checks.compareFile(dest, sha256(patternBytes(sizeOf(n), id(n))));
      } catch (err) {
        checks.restoreFailed();
        console.error(`check of ${id(n)} failed: ${(err as Error).name}: ${(err as Error).message}`);
      }
      await rm(dest, { force: true });
    });

    recordChaos({
      scenario: `${UPLOADS} uploads + cleanup of ${deleted.size}, 10% S3 faults`,
      faults,
      retried: attempts.retries,
      segmentsChecked: checks.checked,
      losses: checks.losses + failedUploads,
      foreignDeletions: foreignGone.length,
      note: `cleanup runs until the queue was empty and no mark was left: ${cleanupRuns}; seeded foreign keys: ${seeded.keys.length}; announced segments still present: ${deletionsMissed}`,
    });
    expect(failedUploads).toBe(0);
    expect(checks.losses).toBe(0);
    expect(checks.checked).toBe(UPLOADS - deleted.size);
    expect(foreignGone).toEqual([]);
    expect(deletionsMissed).toBe(0);
    expect(completed).toBe(deleted.size);
    expect(injected(faults)).toBeGreaterThan(UPLOADS / 10);
    expect(faults['stall timed out']).toBeGreaterThan(0);
    expect(attempts.retries).toBeGreaterThan(0);
    await rm(srcRoot, { recursive: true, force: true });
  });
});

describe('restores under S3 faults', () => {
  it(`${RESTORES} restores of ${SEGMENTS} segments with 10% of S3 requests failing, broken or stalled past the timeout all end correct`, async () => {
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
    const attempts = countAttempts(faulty.clients.s3());
    const checks = new ContentChecks();
    let resumed = 0;
    await inParallel(RESTORES, 8, async (n) => {
      const seg = segments[n % segments.length]!;
      const bytes = patternBytes(seg.size, seg.seed);
      const ranged = n % 3 === 0 && seg.size > 10;
      const start = ranged ? (n * 7919) % seg.size : 0;
      const end = ranged ? Math.min(seg.size - 1, start + ((n * 104729) % 200_000)) : seg.size - 1;
      const path = join(h.root, `r-${n}`);
      const invocation = { dataspace: 'chaos', segmentId: seg.id, destination: `file://${path}`, ...(ranged ? { range: { start, end } } : {}) };
      const expected = sha256(seg.size === 0 ? Buffer.alloc(0) : bytes.subarray(start, end + 1));
      // This restore's reader: each GET beyond its first is a resumption of a broken body.
      let gets = 0;
      const store = Object.assign(Object.create(faulty.store) as S3Store, { get: (...args: Parameters<S3Store['get']>) => ((gets += 1), faulty.store.get(...args)) });
      try {
        const answer = await fetchSegment({ ...faulty, store }, invocation);
        const same = await checks.compareFile(path, expected);
        if (same && answer.sha256 !== expected) checks.losses++;
      } catch (err) {
        checks.restoreFailed();
        console.error(`restore ${n} (${seg.id}, ${ranged ? `${start}-${end}` : 'whole'}) failed: ${(err as Error).name}: ${(err as Error).message}`);
      }
      resumed += Math.max(0, gets - 1);
      await rm(path, { force: true });
    });
    const faults = faultsSince(before);
    attempts.stop();
    recordChaos({
      scenario: `${RESTORES} restores (whole and ranged), 10% S3 faults`,
      faults,
      retried: attempts.retries + resumed,
      segmentsChecked: checks.checked,
      losses: checks.losses,
      note: `of the retries, GETs resumed by the object reader: ${resumed}`,
    });
    expect(checks.checked).toBe(RESTORES);
    expect(checks.losses).toBe(0);
    expect(injected(faults)).toBeGreaterThan(RESTORES / 10);
    expect(faults['stall timed out']).toBeGreaterThan(0);
    expect(resumed).toBeGreaterThan(0);
    expect(await h.rootEntries()).toEqual([]);
  });
});
