/**
 * The cleanup function on the embedded servers: batched deletions across every registered bucket, the time
 * budget and resumption, malformed messages to the DLQ, failing buckets, and — property-tested — that it
 * deletes exactly the announced segments and nothing foreign.
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, PurgeQueueCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ListedBucketRegistry } from '../src/core/bucketRegistry.ts';
import { StorageError } from '../src/core/errors.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import type { BucketRef } from '../src/core/s3Store.ts';
import { runCleanupOnce, type CleanupRuntime } from '../src/cleanup/runCleanup.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';

let servers: LocalServers;
let queue: QueuePair;
let runtime: Runtime;
let sqs: SQSClient;
const BUCKETS = ['clean-a', 'clean-b', 'clean-c'];
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
  return { config: runtime.config, store: runtime.store, clients: { sqs }, registry: new ListedBucketRegistry(refs[2]!, refs), ...overrides };
}

/** A store that counts DeleteObjects requests. */
function countingStore() {
  const calls: { bucket: string; keys: number }[] = [];
  return {
    calls,
    store: {
      deleteBatch: async (ref: BucketRef, keys: readonly string[]) => {
        calls.push({ bucket: ref.bucket, keys: keys.length });
        return runtime.store.deleteBatch(ref, keys);
      },
    },
  };
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of [...BUCKETS, 'clean-shared']) servers.createBucket(b);
  queue = servers.createQueue('deletions', { maxReceiveCount: 2 });
  runtime = await createRuntime({ ...servers.env(), S3_STORAGE_BUCKET: 'clean-c', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_DELETIONS_QUEUE_URL: queue.url });
  sqs = runtime.clients.sqs;
  refs = BUCKETS.map((bucket) => ({ bucket, region: servers.region }));
});
afterAll(async () => {
  await servers?.stop();
});
beforeEach(async () => {
  await sqs.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
  await sqs.send(new PurgeQueueCommand({ QueueUrl: queue.dlqUrl }));
});

describe('cleanup', () => {
  it('10,000 deletions across 3 buckets: at most 30 DeleteObjects requests, within one budget', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `seg-${i}`);
    for (const [i, id] of ids.entries()) if (i % 10 === 0) await put(BUCKETS[i % 3]!, formatSegmentKey('', { dataspace: 'ds', segmentId: id }));
    await announce(ids.map((id) => deletion(id)));
    const counter = countingStore();
    const report = await runCleanupOnce(context({ store: counter.store }), { budgetMs: 600_000 });
    expect(report).toMatchObject({ received: 10_000, completed: 10_000, left: 0, malformed: 0 });
    expect(counter.calls.length).toBeLessThanOrEqual(30);
    expect(Math.max(...counter.calls.map((c) => c.keys))).toBeLessThanOrEqual(1000);
    for (const b of BUCKETS) expect(await list(b)).toEqual([]);
    expect(await depth(queue.url)).toBe(0);
  });

  it('a run cut short by its budget resumes in the next run: nothing lost, nothing deleted twice', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `cut-${i}`);
    for (const id of ids) await put('clean-a', formatSegmentKey('', { dataspace: 'ds', segmentId: id }));
    await announce(ids.map((id) => deletion(id)));
    // A fake clock: each call advances 1 s; a 40 s budget with a 10 s margin allows ~30 receives.
    let t = 0;
    const counter = countingStore();
    const first = await runCleanupOnce(context({ store: counter.store }), { budgetMs: 40_000, safetyMarginMs: 10_000, now: () => (t += 1000) });
    expect(first.received).toBeGreaterThan(0);
    expect(first.received).toBeLessThan(300);
    expect(first.completed).toBe(first.received);
    expect((await list('clean-a')).length).toBe(300 - first.received);
    const second = await runCleanupOnce(context({ store: counter.store }), { budgetMs: 600_000 });
    expect(first.received + second.received).toBe(300);
    expect(await list('clean-a')).toEqual([]);
    // Each key was sent to each bucket exactly once over the two runs.
    expect(counter.calls.reduce((s, c) => s + c.keys, 0)).toBe(300 * 3);
  });

  it('malformed deletion messages reach the DLQ after maxReceiveCount runs; the rest are unaffected', async () => {
    await put('clean-b', formatSegmentKey('', { dataspace: 'ds', segmentId: 'good-1' }));
    await announce(['{bad json', JSON.stringify({ version: 1, dataspace: '../x', segmentId: 's' }), deletion('good-1'), JSON.stringify({ version: 1, dataspace: 'ds', segmentId: 's', extra: true })]);
    const quick = { budgetMs: 60_000, visibilityTimeoutSeconds: 1 };
    const r1 = await runCleanupOnce(context(), quick);
    expect(r1).toMatchObject({ received: 4, malformed: 3, completed: 1 });
    expect(await list('clean-b')).toEqual([]);
    // Each run receives the 3 again; after maxReceiveCount (2) receives the queue's redrive moves them.
    for (let run = 0; run < 2; run++) {
      await new Promise((r) => setTimeout(r, 1200));
      await runCleanupOnce(context(), quick);
    }
    await new Promise((r) => setTimeout(r, 1200));
    await runCleanupOnce(context(), quick);
    expect(await depth(queue.dlqUrl)).toBe(3);
    expect(await depth(queue.url)).toBe(0);
  });

  it('a bucket that is missing or denies access is reported; other buckets are cleaned; the message is kept', async () => {
    await put('clean-a', formatSegmentKey('', { dataspace: 'ds', segmentId: 'kept' }));
    await announce([deletion('kept')]);
    const missing = [...refs, { bucket: 'clean-gone', region: servers.region }];
    const report = await runCleanupOnce(context({ registry: new ListedBucketRegistry(refs[0]!, missing) }), { budgetMs: 60_000 });
    expect(report).toMatchObject({ received: 1, completed: 0, left: 1 });
    expect(report.failures.join('\n')).toContain('clean-gone');
    expect(await list('clean-a')).toEqual([]);
    expect(await depth(queue.url)).toBe(1);
    // Denied: a store answering 403 for one bucket.
    const denied = {
      deleteBatch: async (ref: BucketRef, keys: readonly string[]) => {
        if (ref.bucket === 'clean-b') throw new StorageError('DeleteObjects', ref.bucket, undefined, 'DeleteObjects s3://clean-b failed: AccessDenied 403', { retryable: false, httpStatus: 403 });
        return runtime.store.deleteBatch(ref, keys);
      },
    };
    await sqs.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
    await announce([deletion('kept')]);
    const r2 = await runCleanupOnce(context({ store: denied }), { budgetMs: 60_000 });
    expect(r2).toMatchObject({ completed: 0, left: 1 });
    expect(r2.failures.join('\n')).toContain('AccessDenied');
  });

  it('a dry run reports and deletes nothing, leaving the messages', async () => {
    const key = formatSegmentKey('', { dataspace: 'ds', segmentId: 'dry' });
    await put('clean-a', key);
    await announce([deletion('dry')]);
    const report = await runCleanupOnce(context(), { budgetMs: 60_000, dryRun: true });
    expect(report).toMatchObject({ dryRun: true, received: 1, completed: 0, left: 1, deleteRequests: 0 });
    expect(await list('clean-a')).toEqual([key]);
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
          const report = await runCleanupOnce(context({ registry: new ListedBucketRegistry(shared, [shared]) }), { budgetMs: 60_000 });
          expect(report.completed).toBe(announced.length);
          expect(await list('clean-shared')).toEqual([...kept].sort());
        },
      ),
      { numRuns: 25 },
    );
  });
});
