/**
 * The cleanup function on the embedded servers: the grace period (deletion marks, due times on an injected
 * clock, undelete), batched deletions across every registered bucket and what they cost, long polling and the
 * time budget, malformed messages to the DLQ, failing buckets, and — property-tested — that it deletes exactly
 * the announced segments and nothing foreign.
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, PurgeQueueCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ListedBucketRegistry } from '../src/core/bucketRegistry.ts';
import { StorageError } from '../src/core/errors.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import type { BucketRef, S3Store } from '../src/core/s3Store.ts';
import { runCleanupOnce, type CleanupOptions, type CleanupRuntime } from '../src/cleanup/runCleanup.ts';
import { DeletionMarks, readAllMarks, summarise, type MarkS3 } from '../src/core/deletionMarks/index.ts';
import { cancelDeletion } from '../src/core/deletionMarks/cancel.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';

let servers: LocalServers;
let queue: QueuePair;
let runtime: Runtime;
let sqs: SQSClient;
const BUCKETS = ['clean-a', 'clean-b', 'clean-c'];
const STATE: BucketRef = { bucket: 'clean-state', region: 'us-east-1' };
let refs: BucketRef[];

async function announce(bodies: string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    await sqs.send(new SendMessageBatchCommand({ QueueUrl: queue.url, Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })) }));
  }
}
const deletion = (segmentId: string, dataspace = 'ds') => JSON.stringify({ version: 1, dataspace, segmentId });

async function put(bucket: string, key: string): Promise<void> {
  await runtime.clients.s3().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
}
async function list(bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await runtime.clients.s3().send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    keys.push(...(out.Contents ?? []).map((c) => c.Key ?? ''));
    token = out.NextContinuationToken;
  } while (token);
  return keys.sort();
}
async function depth(url: string): Promise<number> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
}

function context(overrides: Partial<CleanupRuntime> = {}): CleanupRuntime {
  return { config: runtime.config, store: runtime.store, clients: { sqs }, deletions: runtime.deletions, registry: new ListedBucketRegistry(refs[2]!, refs), ...overrides };
}

/** A store that counts its requests by operation and bucket (DeleteObjects with their key counts). */
function countingStore() {
  const calls: { bucket: string; keys: number }[] = [];
  const requests: Record<string, number> = {};
  const count = (op: string, ref: BucketRef) => void (requests[`${op} ${ref.bucket}`] = (requests[`${op} ${ref.bucket}`] ?? 0) + 1);
  const store: MarkS3 & Pick<S3Store, 'deleteBatch'> = {
    deleteBatch: async (ref, keys) => {
      count('DeleteObjects', ref);
      calls.push({ bucket: ref.bucket, keys: keys.length });
      return runtime.store.deleteBatch(ref, keys);
    },
    putSmall: async (ref, key, body, condition) => {
      count('PutObject', ref);
      return runtime.store.putSmall(ref, key, body, condition);
    },
    getSmall: async (ref, key) => {
      count('GetObject', ref);
      return runtime.store.getSmall(ref, key);
    },
    list: async function* (ref, prefix) {
      for await (const page of runtime.store.list(ref, prefix)) {
        count('ListObjectsV2', ref);
        yield page;
      }
    },
  };
  const deletions = new DeletionMarks(STATE, '', store);
  return { calls, requests, store, deletions, segmentDeletes: () => calls.filter((c) => c.bucket !== STATE.bucket) };
}

/** One run with the real clock unless told otherwise; short polls where the test is not about draining. */
const run = (rt: CleanupRuntime, options: Partial<CleanupOptions> = {}) => runCleanupOnce(rt, { budgetMs: 600_000, waitTimeSeconds: 0, ...options });
const keyOf = (segmentId: string) => formatSegmentKey('', { dataspace: 'ds', segmentId });
const HOUR = 3_600_000;

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of [...BUCKETS, 'clean-shared', 'clean-state']) servers.createBucket(b);
  queue = servers.createQueue('deletions', { maxReceiveCount: 2 });
  runtime = await createRuntime({ ...servers.env(), S3_STORAGE_BUCKET: 'clean-c', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_DELETIONS_QUEUE_URL: queue.url, S3_STORAGE_STATE_BUCKET: 'clean-state', S3_STORAGE_DELETION_DELAY_HOURS: '0' });
  sqs = runtime.clients.sqs;
  refs = BUCKETS.map((bucket) => ({ bucket, region: servers.region }));
});
afterAll(async () => {
  await servers?.stop();
});
beforeEach(async () => {
  await sqs.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
  await sqs.send(new PurgeQueueCommand({ QueueUrl: queue.dlqUrl }));
  for (const bucket of [...BUCKETS, STATE.bucket]) {
    const keys = await list(bucket);
    for (let i = 0; i < keys.length; i += 1000) await runtime.store.deleteBatch({ bucket, region: servers.region }, keys.slice(i, i + 1000));
  }
});

describe('grace period (deletion marks)', () => {
  it('24-hour delay: 10,000 deletions stay in every bucket as pending (≤ 30 mark PUTs), are carried out by the first run after due (≤ 30 DeleteObjects)', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `seg-${i}`);
    for (const [i, id] of ids.entries()) if (i % 10 === 0) for (const b of BUCKETS) await put(b, keyOf(id));
    await announce(ids.map((id) => deletion(id)));
    const counter = countingStore();
    const rt = context({ store: counter.store, deletions: counter.deletions, config: { ...runtime.config, deletionDelayHours: 24 } });
    const t0 = Date.parse('2026-11-25T04:00:00.000Z');

    const marking = await run(rt, { now: () => t0 });
    expect(marking).toMatchObject({ received: 10_000, completed: 10_000, marked: 10_000, marksApplied: 0, segmentsDeleted: 0, deleteRequests: 0 });
    expect(counter.requests['PutObject clean-state']).toBeLessThanOrEqual(30);
    expect(counter.segmentDeletes()).toEqual([]);
    for (const b of BUCKETS) expect((await list(b)).length).toBe(1000);
    expect(await depth(queue.url)).toBe(0);
    const pending = summarise(await readAllMarks(runtime.deletions));
    expect(pending).toMatchObject({ pending: 10_000, applying: 0, oldest: new Date(t0).toISOString(), nextDue: new Date(t0 + 24 * HOUR).toISOString() });

    const early = await run(rt, { now: () => t0 + 24 * HOUR - 1000 });
    expect(early).toMatchObject({ marksApplied: 0, segmentsDeleted: 0 });
    for (const b of BUCKETS) expect((await list(b)).length).toBe(1000);

    const puts = counter.requests['PutObject clean-state'] ?? 0;
    const due = await run(rt, { now: () => t0 + 24 * HOUR });
    expect(due).toMatchObject({ segmentsDeleted: 10_000, marksApplied: marking.marksWritten });
    expect(counter.segmentDeletes().length).toBeLessThanOrEqual(30);
    expect(Math.max(...counter.segmentDeletes().map((c) => c.keys))).toBeLessThanOrEqual(1000);
    // Claiming the marks (pending → applying) is one conditional PUT each: still ≤ 30 PUTs in all.
    expect(counter.requests['PutObject clean-state']).toBeLessThanOrEqual(30);
    expect((counter.requests['PutObject clean-state'] ?? 0) - puts).toBe(marking.marksWritten);
    // The marks themselves go in one DeleteObjects of the state bucket.
    expect(counter.requests['DeleteObjects clean-state']).toBe(1);
    for (const b of [...BUCKETS, STATE.bucket]) expect(await list(b)).toEqual([]);
  });

  it('undelete before the due time keeps the object; the other deletions of the mark go ahead', async () => {
    for (const id of ['keep', 'drop']) await put('clean-a', keyOf(id));
    await announce([deletion('keep'), deletion('drop')]);
    const rt = context({ config: { ...runtime.config, deletionDelayHours: 24 } });
    const t0 = Date.now();
    await run(rt, { now: () => t0 });
    const all = await readAllMarks(runtime.deletions);
    expect(await cancelDeletion(runtime.deletions, all.read, { dataspace: 'ds', segmentId: 'keep' })).toHaveLength(1);
    expect(summarise(await readAllMarks(runtime.deletions)).pending).toBe(1);
    const due = await run(rt, { now: () => t0 + 25 * HOUR });
    expect(due).toMatchObject({ segmentsDeleted: 1, marksApplied: 1 });
    expect(await list('clean-a')).toEqual([keyOf('keep')]);
    expect(await list(STATE.bucket)).toEqual([]);
  });

  it('with a delay of 0 a run carries out at once the marks it wrote', async () => {
    await put('clean-b', keyOf('now-1'));
    await announce([deletion('now-1')]);
    const report = await run(context());
    expect(report).toMatchObject({ received: 1, marked: 1, marksWritten: 1, marksApplied: 1, segmentsDeleted: 1, completed: 1 });
    expect(await list('clean-b')).toEqual([]);
    expect(await list(STATE.bucket)).toEqual([]);
  });
});

describe('cleanup', () => {
  it('drains with long polling: messages sent while a run waits are taken by that run, which ends on an empty long poll', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `late-${i}`);
    for (const id of ids) await put('clean-a', keyOf(id));
    await announce(ids.slice(0, 5).map((id) => deletion(id)));
    const late = new Promise<void>((resolve) => setTimeout(() => void announce(ids.slice(5).map((id) => deletion(id))).then(resolve), 1500));
    const started = Date.now();
    const report = await run(context(), { waitTimeSeconds: 3 });
    await late;
    expect(report).toMatchObject({ received: 10, completed: 10, segmentsDeleted: 10 });
    expect(await list('clean-a')).toEqual([]);
    // It ended on a long poll that found nothing: at least one full wait after the late messages.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500 + 3000);
  });

  it('a run cut short by its budget resumes in the next run: nothing lost, nothing deleted twice', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `cut-${i}`);
    for (const id of ids) await put('clean-a', keyOf(id));
    await announce(ids.map((id) => deletion(id)));
    // A fake clock: each call advances 1 s; a 40 s budget with a 10 s margin allows a few dozen receives.
    let t = Date.now();
    const counter = countingStore();
    const rt = context({ store: counter.store, deletions: counter.deletions });
    const first = await run(rt, { budgetMs: 40_000, safetyMarginMs: 10_000, now: () => (t += 1000) });
    expect(first.received).toBeGreaterThan(0);
    expect(first.received).toBeLessThan(300);
    expect(first).toMatchObject({ completed: first.received, segmentsDeleted: first.received });
    expect((await list('clean-a')).length).toBe(300 - first.received);
    const second = await run(rt);
    expect(first.received + second.received).toBe(300);
    expect(await list('clean-a')).toEqual([]);
    // Each key was sent to each bucket exactly once over the two runs.
    expect(counter.segmentDeletes().reduce((s, c) => s + c.keys, 0)).toBe(300 * 3);
  });

  it('malformed deletion messages reach the DLQ after maxReceiveCount receives; the rest are unaffected', async () => {
    await put('clean-b', keyOf('good-1'));
    await announce(['{bad json', JSON.stringify({ version: 1, dataspace: '../x', segmentId: 's' }), deletion('good-1'), JSON.stringify({ version: 1, dataspace: 'ds', segmentId: 's', extra: true })]);
    // Messages hidden for 3 s and long polls of 1 s: each run ends on an empty long poll before its messages
    // reappear (as in production, where they stay hidden past the run's deadline); the malformed ones come back
    // to the next run until the queue's redrive (maxReceiveCount 2) moves them.
    const quick = { visibilityTimeoutSeconds: 3, waitTimeSeconds: 1 };
    const first = await run(context(), quick);
    expect(first).toMatchObject({ received: 4, malformed: 3, completed: 1, segmentsDeleted: 1 });
    let runs = 1;
    while ((await depth(queue.dlqUrl)) < 3 && runs < 5) {
      await new Promise((r) => setTimeout(r, 3100));
      const later = await run(context(), quick);
      expect(later).toMatchObject({ completed: 0, segmentsDeleted: 0 });
      runs++;
    }
    expect(runs).toBe(3);
    expect(await list('clean-b')).toEqual([]);
    expect(await depth(queue.dlqUrl)).toBe(3);
    expect(await depth(queue.url)).toBe(0);
  });

  it('a bucket that is missing or denies access is reported; other buckets are cleaned; the mark is kept and carried out later', async () => {
    await put('clean-a', formatSegmentKey('', { dataspace: 'ds', segmentId: 'kept' }));
    await announce([deletion('kept')]);
    const missing = [...refs, { bucket: 'clean-gone', region: servers.region }];
    const report = await run(context({ registry: new ListedBucketRegistry(refs[0]!, missing) }));
    expect(report).toMatchObject({ received: 1, completed: 1, marksApplied: 0 });
    expect(report.failures.join('\n')).toContain('clean-gone');
    expect(await list('clean-a')).toEqual([]);
    expect(await depth(queue.url)).toBe(0);
    const marks = await readAllMarks(runtime.deletions);
    expect(marks.read.map((m) => m.doc.state)).toEqual(['applying']);
    // Denied: a store answering 403 for one bucket keeps the mark too.
    const denied = {
      deleteBatch: async (ref: BucketRef, keys: readonly string[]) => {
        if (ref.bucket === 'clean-b') throw new StorageError('DeleteObjects', ref.bucket, undefined, 'DeleteObjects s3://clean-b failed: AccessDenied 403', { retryable: false, httpStatus: 403 });
        return runtime.store.deleteBatch(ref, keys);
      },
    };
    const r2 = await run(context({ store: denied }));
    expect(r2).toMatchObject({ marksApplied: 0 });
    expect(r2.failures.join('\n')).toContain('AccessDenied');
    expect((await readAllMarks(runtime.deletions)).read).toHaveLength(1);
    // Once every bucket answers, the next run finishes the claimed mark and removes it.
    const r3 = await run(context());
    expect(r3).toMatchObject({ marksApplied: 1, failures: [] });
    expect(await list(STATE.bucket)).toEqual([]);
  });

  it('a dry run reports and writes or deletes nothing, leaving the messages', async () => {
    const key = formatSegmentKey('', { dataspace: 'ds', segmentId: 'dry' });
    await put('clean-a', key);
    await announce([deletion('dry')]);
    const report = await run(context(), { dryRun: true });
    expect(report).toMatchObject({ dryRun: true, received: 1, completed: 0, left: 1, deleteRequests: 0, marksWritten: 0 });
    expect(await list('clean-a')).toEqual([key]);
    expect(await list(STATE.bucket)).toEqual([]);
    expect(await depth(queue.url)).toBe(1);
  });

  it('property: with foreign keys, keys of another prefix and announced keys, exactly the announced ones go', async () => {
    const idArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/).filter((s) => !s.includes('..'));
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(idArb, { minLength: 1, maxLength: 12 }),
        fc.uniqueArray(fc.stringMatching(/^[ -~]{1,40}$/), { maxLength: 8 }),
        fc.nat(),
        async (ids, foreign, split) => {
          await sqs.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
          for (const k of await list('clean-shared')) await runtime.store.deleteBatch({ bucket: 'clean-shared', region: servers.region }, [k]);
          const announced = ids.slice(0, (split % ids.length) + 1);
          const kept = new Set<string>();
          for (const id of ids) {
            const ours = formatSegmentKey('', { dataspace: 'ds', segmentId: id });
            await put('clean-shared', ours);
            if (!announced.includes(id)) kept.add(ours);
            // The same segment under another cluster's prefix: never ours to delete.
            const theirs = formatSegmentKey('other-cluster/', { dataspace: 'ds', segmentId: id });
            await put('clean-shared', theirs);
            kept.add(theirs);
          }
          for (const f of foreign) {
            await put('clean-shared', f);
            kept.add(f);
          }
          await announce(announced.map((id) => deletion(id)));
          const shared: BucketRef = { bucket: 'clean-shared', region: servers.region };
          const report = await run(context({ registry: new ListedBucketRegistry(shared, [shared]) }));
          expect(report.completed).toBe(announced.length);
          expect(await list('clean-shared')).toEqual([...kept].sort());
        },
      ),
      { numRuns: 25 },
    );
  });
});
