/**
 * Deletion marks under concurrency and crashes:
 * - a cancellation racing cleanup's claim of the same mark (conditional writes settled atomically, as S3 does):
 *   exactly one wins, and the loser says so (the segment is kept, or the cancellation finds it too late);
 * - a cleanup run killed at each of its requests in turn (every S3 and SQS request after the kill fails, as
 *   for a dead process), then restarted: every due deletion done, every pending one still pending, no mark
 *   lost, nothing foreign touched.
 */
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PurgeQueueCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMarks } from '../src/cleanup/applyDueMarks.ts';
import { runCleanupOnce, type CleanupRuntime } from '../src/cleanup/runCleanup.ts';
import { ListedBucketRegistry } from '../src/core/bucketRegistry.ts';
import { cancelDeletion, DeletionMarks, identityId, readAllMarks, type MarkS3 } from '../src/core/deletionMarks/index.ts';
import { DeletionInProgressError, StorageError } from '../src/core/errors.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import type { BucketRef, S3Store } from '../src/core/s3Store.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';

const keyOf = (segmentId: string, prefix = '') => formatSegmentKey(prefix, { dataspace: 'ds', segmentId });

async function keysIn(s3: S3Client, bucket: string): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((c) => c.Key ?? '').sort();
}

/**
 * S3's conditional writes, atomically as S3 settles them, with random latency so requests interleave. (moto
 * checks If-Match and writes in two steps: two concurrent writes on one ETag can both succeed there, so the race
 * cannot be judged on it.)
 */
class AtomicConditionalStore implements MarkS3, Pick<S3Store, 'deleteBatch'> {
  readonly objects = new Map<string, { body: string; etag: string }>();
  preconditionFailures = 0;
  #version = 0;
  #pause = () => new Promise<void>((r) => setTimeout(r, Math.random() * 8));
  async getSmall(ref: BucketRef, key: string) {
    await this.#pause();
    return this.objects.get(`${ref.bucket}/${key}`);
  }
  async putSmall(ref: BucketRef, key: string, body: string | Buffer, condition?: { ifNoneMatch: '*' } | { ifMatch: string }) {
    await this.#pause();
    const existing = this.objects.get(`${ref.bucket}/${key}`);
    if (condition !== undefined && ('ifNoneMatch' in condition ? existing !== undefined : existing?.etag !== condition.ifMatch)) {
      this.preconditionFailures++;
      throw new StorageError('PutObject', ref.bucket, key, 'PreconditionFailed 412', { retryable: false, httpStatus: existing === undefined ? 404 : 412 });
    }
    const etag = `"v${++this.#version}"`;
    this.objects.set(`${ref.bucket}/${key}`, { body: String(body), etag });
    return etag;
  }
  async *list(ref: BucketRef, prefix: string) {
    await this.#pause();
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(`${ref.bucket}/${prefix}`)).sort();
    yield keys.map((k) => ({ key: k.slice(ref.bucket.length + 1), size: 1, etag: this.objects.get(k)?.etag, lastModified: undefined }));
  }
  async deleteBatch(ref: BucketRef, keys: readonly string[]) {
    await this.#pause();
    for (const k of keys) this.objects.delete(`${ref.bucket}/${k}`);
    return new Map<string, string>();
  }
  keysIn(bucket: string): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith(`${bucket}/`)).map((k) => k.slice(bucket.length + 1));
  }
}

describe('cancellation racing cleanup (conditional writes as S3 settles them)', () => {
  it('200 rounds of undelete against the claim of the same mark: exactly one wins each time', async () => {
    const store = new AtomicConditionalStore();
    const data: BucketRef = { bucket: 'race-data', region: 'us-east-1' };
    const marks = new DeletionMarks({ bucket: 'race-state', region: 'us-east-1' }, '', store);
    const ctx = { marks, store, buckets: [data], keyPrefix: '', dryRun: false };
    const outcomes = { kept: 0, tooLate: 0 };
    for (let round = 0; round < 200; round++) {
      const [keep, other] = [`keep-${round}`, `other-${round}`];
      for (const id of [keep, other]) await store.putSmall(data, keyOf(id), 'x');
      const mark = await marks.create([{ dataspace: 'ds', segmentId: keep }, { dataspace: 'ds', segmentId: other }], new Date(), 0);
      const [cancel, applied] = await Promise.allSettled([cancelDeletion(marks, [mark], { dataspace: 'ds', segmentId: keep }), applyMarks(ctx, [mark.key], new Date(), () => true)]);
      expect(applied.status).toBe('fulfilled');
      const left = store.keysIn(data.bucket);
      if (cancel.status === 'fulfilled' && cancel.value.length === 1) {
        expect(left).toEqual([keyOf(keep)]);
        outcomes.kept++;
      } else {
        // Too late: the mark was claimed (in progress) or already carried out and removed (nothing to cancel).
        if (cancel.status === 'rejected') expect(cancel.reason).toBeInstanceOf(DeletionInProgressError);
        expect(left).toEqual([]);
        outcomes.tooLate++;
      }
      expect(store.keysIn('race-state')).toEqual([]);
      await store.deleteBatch(data, left);
    }
    // Both sides won some rounds, and conditional writes settled the collisions.
    expect(outcomes.kept).toBeGreaterThan(0);
    expect(outcomes.tooLate).toBeGreaterThan(0);
    expect(store.preconditionFailures).toBeGreaterThan(0);
  });
});

describe('a cleanup run killed at each of its requests, then restarted (embedded server)', () => {
  let servers: LocalServers;
  let queue: QueuePair;
  let runtime: Runtime;
  const BUCKETS = ['crash-a', 'crash-b'];
  const STATE = 'crash-state';
  const FOREIGN = ['notes/keep.txt', keyOf('seg-0', 'other-cluster/')];
  const ANNOUNCED = Array.from({ length: 10 }, (_, i) => `seg-${i}`);
  const refs = () => BUCKETS.map((bucket) => ({ bucket, region: servers.region }));

  beforeAll(async () => {
    servers = await startLocalServers();
    for (const b of [...BUCKETS, STATE]) servers.createBucket(b);
    queue = servers.createQueue('crash-deletions', { maxReceiveCount: 1000 });
    runtime = await createRuntime({ ...servers.env(), S3_STORAGE_BUCKET: 'crash-b', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: STATE, S3_STORAGE_DELETIONS_QUEUE_URL: queue.url, LOG_LEVEL: 'CRITICAL' });
  });
  afterAll(async () => {
    await servers?.stop();
  });

  /**
   * The runtime as seen by a process SIGKILLed before its request number `limit + 1`: that request and every
   * later one never get an answer (nothing the code catches: the process is simply gone). `killed` resolves then.
   */
  function killedAfter(limit: number, delayHours: number): { rt: CleanupRuntime; killed: Promise<void> } {
    let sent = 0;
    let kill: () => void = () => undefined;
    const killed = new Promise<void>((resolve) => (kill = resolve));
    const gate = async () => {
      if (++sent <= limit) return;
      kill();
      await new Promise<never>(() => undefined);
    };
    const s = runtime.store;
    const store: MarkS3 & Pick<S3Store, 'deleteBatch'> = {
      deleteBatch: async (ref, keys) => (await gate(), s.deleteBatch(ref, keys)),
      putSmall: async (ref, key, body, condition) => (await gate(), s.putSmall(ref, key, body, condition)),
      getSmall: async (ref, key) => (await gate(), s.getSmall(ref, key)),
      list: async function* (ref, prefix) {
        await gate();
        yield* s.list(ref, prefix);
      },
    };
    const real = runtime.clients.sqs;
    // A test double: cleanup uses only send() of its SQS client.
    const sqs = { send: async (command: Parameters<SQSClient['send']>[0]) => (await gate(), real.send(command)) } as Pick<SQSClient, 'send'> as SQSClient;
    const registry = new ListedBucketRegistry(refs()[1]!, refs());
    const deletions = new DeletionMarks({ bucket: STATE, region: servers.region }, '', store);
    return { rt: { config: { ...runtime.config, deletionDelayHours: delayHours }, registry, deletions, store, clients: { sqs } }, killed };
  }

  async function reset(): Promise<void> {
    await runtime.clients.sqs.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
    const s3 = runtime.clients.s3();
    for (const b of [...BUCKETS, STATE]) {
      const keys = await keysIn(s3, b);
      if (keys.length > 0) await runtime.store.deleteBatch({ bucket: b, region: servers.region }, keys);
    }
    for (const b of BUCKETS) for (const k of [...ANNOUNCED.map((id) => keyOf(id)), ...FOREIGN]) await s3.send(new PutObjectCommand({ Bucket: b, Key: k, Body: 'x' }));
    for (let i = 0; i < ANNOUNCED.length; i += 10) {
      const entries = ANNOUNCED.slice(i, i + 10).map((segmentId, j) => ({ Id: String(j), MessageBody: JSON.stringify({ version: 1, dataspace: 'ds', segmentId }) }));
      await runtime.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queue.url, Entries: entries }));
    }
  }

  /** A run killed before its request `limit + 1` (if it gets that far), then, once its messages are visible
   *  again, a run to the end. */
  async function killThenRestart(limit: number, delayHours: number, now: number): Promise<{ killed: boolean }> {
    const options = { budgetMs: 60_000, waitTimeSeconds: 0, visibilityTimeoutSeconds: 1, now: () => now };
    const dying = killedAfter(limit, delayHours);
    const killed = await Promise.race([runCleanupOnce(dying.rt, options).then(() => false), dying.killed.then(() => true)]);
    if (killed) await new Promise((r) => setTimeout(r, 1100));
    await runCleanupOnce(killedAfter(Number.POSITIVE_INFINITY, delayHours).rt, options);
    return { killed };
  }

  it('delay 0: at every kill point, after the restart every deletion is done, no mark is left, nothing foreign touched', async () => {
    let killPoints = 0;
    for (let limit = 0; ; limit++) {
      await reset();
      const { killed } = await killThenRestart(limit, 0, Date.now());
      for (const b of BUCKETS) expect(await keysIn(runtime.clients.s3(), b)).toEqual([...FOREIGN].sort());
      expect(await keysIn(runtime.clients.s3(), STATE)).toEqual([]);
      if (!killed) break;
      killPoints++;
    }
    expect(killPoints).toBeGreaterThanOrEqual(10);
  });

  it('24-hour delay: at every kill point, after the restart every deletion is pending in a mark and nothing is deleted; due, all are carried out', async () => {
    const t0 = Date.now();
    let killPoints = 0;
    for (let limit = 0; ; limit++) {
      await reset();
      const { killed } = await killThenRestart(limit, 24, t0);
      for (const b of BUCKETS) expect((await keysIn(runtime.clients.s3(), b)).length).toBe(ANNOUNCED.length + FOREIGN.length);
      const marks = await readAllMarks(runtime.deletions);
      const pending = new Set(marks.read.flatMap((m) => (m.doc.state === 'pending' ? m.doc.segments.map(identityId) : [])));
      expect([...pending].sort()).toEqual(ANNOUNCED.map((id) => `ds/${id}`).sort());
      if (!killed) {
        // And once due (a kill point of the due deletions is the test above), every one is carried out.
        await runCleanupOnce(killedAfter(Number.POSITIVE_INFINITY, 24).rt, { budgetMs: 60_000, waitTimeSeconds: 0, now: () => t0 + 24 * 3_600_000 });
        for (const b of BUCKETS) expect(await keysIn(runtime.clients.s3(), b)).toEqual([...FOREIGN].sort());
        expect(await keysIn(runtime.clients.s3(), STATE)).toEqual([]);
        break;
      }
      killPoints++;
    }
    expect(killPoints).toBeGreaterThanOrEqual(5);
  });
});
