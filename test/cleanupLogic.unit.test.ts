/**
 * The cleanup's logic with in-memory stores and queue, no server: how due marks are claimed (retries of lost
 * races, 404 and refusals), grouped (whole marks, at most MAX_SEGMENTS_PER_MARK keys a request), carried out and
 * removed (only once every key is gone), what a dry run does, how received deletions become marks (full marks,
 * the earliest due, failed writes and acknowledgements), the time budget of a run, `delete --now`, and the
 * bucket storage size logger (interval, resumption, deadline, which bucket is current). Written for the
 * survivors of the mutation runs `marks` and `cleanup` (docs/MUTATION.md).
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type DeleteMessageBatchCommandInput, type Message, type ReceiveMessageCommandInput, type SQSClient } from '@aws-sdk/client-sqs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyDueMarks, applyMarks, type DueContext } from '../src/cleanup/applyDueMarks.ts';
import { deleteEverywhere, KEYS_PER_REQUEST } from '../src/cleanup/deleteEverywhere.ts';
import { deleteSegmentNow } from '../src/cleanup/deleteNow.ts';
import { DeletionsQueue, type ReceivedDeletion } from '../src/cleanup/deletionsQueue.ts';
import { MarkingBatch } from '../src/cleanup/markingBatch.ts';
import { undeleteSegment } from '../src/cleanup/undelete.ts';
import { runCleanupOnce, VISIBILITY_MARGIN_SECONDS, type CleanupRuntime } from '../src/cleanup/runCleanup.ts';
import { logStorageSize, MemorySizeLogState, S3SizeLogState, sizeLogStateFor, type SizeLogDocument, type SizeLogRuntime } from '../src/cleanup/storageSizeLogger.ts';
import { SingleBucketRegistry, type BucketRegistry } from '../src/core/bucketRegistry.ts';
import { loadConfig } from '../src/core/config.ts';
import { DeletionMarks, encodeMark, identityId, MAX_SEGMENTS_PER_MARK, type MarkDocument } from '../src/core/deletionMarks/index.ts';
import { NoPendingDeletionError, StorageError } from '../src/core/errors.ts';
import { logger } from '../src/core/logger.ts';
import { formatDeletionMarkKey, formatSegmentKey, storageSizeKey, type SegmentIdentity } from '../src/core/objectKeys.ts';
import type { Runtime } from '../src/core/runtime.ts';
import type { BucketRef, ListedObject } from '../src/core/s3Store.ts';

const REGION = 'eu-west-1';
const STATE: BucketRef = { bucket: 'state', region: REGION };
const A: BucketRef = { bucket: 'bucket-a', region: REGION };
const B: BucketRef = { bucket: 'bucket-b', region: REGION };
const QUEUE_URL = 'http://127.0.0.1:9/000000000000/deletions';
const T0 = Date.parse('2026-12-01T04:00:00.000Z');
const HOUR = 3_600_000;

const seg = (id: string): SegmentIdentity => ({ dataspace: 'ds', segmentId: id });
const segs = (tag: string, n: number) => Array.from({ length: n }, (_, i) => seg(`${tag}-${i}`));
const keyOf = (s: SegmentIdentity) => formatSegmentKey('', s);
const statusError = (status: number) => new StorageError('PutObject', STATE.bucket, 'k', `PutObject failed: ${status}`, { retryable: false, httpStatus: status });

// Quiet: the tests that read the log spy on it again (the same spy).
beforeEach(() => {
  for (const level of ['info', 'warn', 'error'] as const) vi.spyOn(logger, level).mockImplementation(() => undefined);
});
afterEach(() => vi.restoreAllMocks());

/** S3 in memory: objects per bucket and region, conditional writes as S3 does them, scripted faults, a request log. */
class MemoryS3 {
  readonly #objects = new Map<string, Map<string, { body: string; etag: string }>>();
  #etag = 0;
  readonly deletes: { bucket: string; keys: readonly string[] }[] = [];
  readonly puts: { bucket: string; key: string }[] = [];
  readonly reads = new Map<string, number>();
  /** Before a put is applied; may throw (a refusal, or a race lost after changing what is stored). */
  beforePut: ((ref: BucketRef, key: string) => void) | undefined;
  /** A per-key DeleteObjects error (its reason), or undefined to delete the key. */
  keyError: ((ref: BucketRef, key: string) => string | undefined) | undefined;
  /** A DeleteObjects that fails as a whole. */
  bucketError: ((ref: BucketRef) => Error | undefined) | undefined;

  #in(ref: BucketRef) {
    const id = `${ref.bucket}@${ref.region}`;
    let objects = this.#objects.get(id);
    if (objects === undefined) this.#objects.set(id, (objects = new Map()));
    return objects;
  }
  store(ref: BucketRef, key: string, body: string): void {
    this.#in(ref).set(key, { body, etag: `"${++this.#etag}"` });
  }
  keys(ref: BucketRef): string[] {
    return [...this.#in(ref).keys()].sort();
  }
  body(ref: BucketRef, key: string): string | undefined {
    return this.#in(ref).get(key)?.body;
  }
  remove(ref: BucketRef, key: string): void {
    this.#in(ref).delete(key);
  }

  async getSmall(ref: BucketRef, key: string) {
    const n = (this.reads.get(key) ?? 0) + 1;
    this.reads.set(key, n);
    // A run-away retry loop ends here instead of hanging the test.
    if (n > 50) throw new Error(`runaway: ${key} read ${n} times`);
    const found = this.#in(ref).get(key);
    return found === undefined ? undefined : { body: found.body, etag: found.etag };
  }
  async putSmall(ref: BucketRef, key: string, body: string | Buffer, condition?: { ifNoneMatch: '*' } | { ifMatch: string }) {
    this.puts.push({ bucket: ref.bucket, key });
    this.beforePut?.(ref, key);
    const found = this.#in(ref).get(key);
    if (condition !== undefined && 'ifNoneMatch' in condition && found !== undefined) throw statusError(412);
    if (condition !== undefined && 'ifMatch' in condition && found?.etag !== condition.ifMatch) throw statusError(found === undefined ? 404 : 412);
    this.store(ref, key, String(body));
    return this.#in(ref).get(key)?.etag;
  }
  async *list(ref: BucketRef, prefix: string, startAfter?: string): AsyncGenerator<readonly ListedObject[]> {
    const keys = this.keys(ref).filter((k) => k.startsWith(prefix) && (startAfter === undefined || k > startAfter));
    for (let i = 0; i < keys.length; i += 1000) yield keys.slice(i, i + 1000).map((key) => ({ key, size: this.body(ref, key)?.length ?? 0, etag: this.#in(ref).get(key)?.etag, lastModified: undefined }));
  }
  async deleteBatch(ref: BucketRef, keys: readonly string[]): Promise<Map<string, string>> {
    if (keys.length > 1000) throw new RangeError('deleteBatch takes at most 1,000 keys');
    this.deletes.push({ bucket: ref.bucket, keys });
    const whole = this.bucketError?.(ref);
    if (whole !== undefined) throw whole;
    const failed = new Map<string, string>();
    for (const key of keys) {
      const reason = this.keyError?.(ref, key);
      if (reason === undefined) this.#in(ref).delete(key);
      else failed.set(key, reason);
    }
    return failed;
  }
  /** The DeleteObjects requests of `ref`, as the number of keys each carried. */
  deleteSizes(ref: BucketRef): number[] {
    return this.deletes.filter((d) => d.bucket === ref.bucket).map((d) => d.keys.length);
  }
}

/** Mark ids in creation order, so marks due at the same second list in the order they were written. */
function counterIds(): () => string {
  let n = 0;
  return () => (++n).toString(16).padStart(16, '0');
}

function world(buckets: readonly BucketRef[] = [A, B]) {
  const s3 = new MemoryS3();
  const marks = new DeletionMarks(STATE, '', s3, counterIds());
  const ctx = (dryRun = false): DueContext => ({ marks, store: s3, buckets, keyPrefix: '', dryRun });
  /** Stores a segment object in every bucket. */
  const seed = (list: readonly SegmentIdentity[]) => {
    for (const ref of buckets) for (const s of list) s3.store(ref, keyOf(s), 'x');
  };
  const markKeys = () => s3.keys(STATE);
  const doc = (key: string) => JSON.parse(s3.body(STATE, key) ?? 'null') as MarkDocument | null;
  return { s3, marks, ctx, seed, markKeys, doc };
}

const always = () => true;

describe('carrying out due marks', () => {
  it(`groups whole marks into requests of at most ${MAX_SEGMENTS_PER_MARK} keys per bucket, then removes every mark`, async () => {
    const w = world();
    const sizes = [600, 400, 300, 800];
    const all = sizes.flatMap((n, i) => segs(`m${i}`, n));
    w.seed(all);
    for (const [i, n] of sizes.entries()) await w.marks.create(segs(`m${i}`, n), new Date(T0), 0);

    const outcome = await applyDueMarks(w.ctx(), new Date(T0), always);
    // 600 + 400 fill one request exactly; 300 more would not fit, nor would 300 + 800: whole marks, never split.
    const requests = [600 + 400, 300, 800];
    expect(w.s3.deleteSizes(A)).toEqual(requests);
    expect(w.s3.deleteSizes(B)).toEqual(requests);
    expect(outcome).toEqual({ marksApplied: sizes.length, segmentsDeleted: all.length, deleteRequests: 2 * requests.length, deletedPerBucket: { [A.bucket]: all.length, [B.bucket]: all.length }, failures: [] });
    expect(w.s3.keys(A)).toEqual([]);
    expect(w.s3.keys(B)).toEqual([]);
    expect(w.markKeys()).toEqual([]);
  });

  it('with nothing due: no request, nothing counted, no failures (dry run or not)', async () => {
    const empty = { marksApplied: 0, segmentsDeleted: 0, deleteRequests: 0, deletedPerBucket: {}, failures: [] };
    for (const dryRun of [false, true]) {
      const w = world();
      await w.marks.create([seg('later')], new Date(T0 + HOUR), 0);
      const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
      expect(await applyDueMarks(w.ctx(dryRun), new Date(T0), always)).toStrictEqual(empty);
      expect(w.s3.deletes).toEqual([]);
      expect(info).not.toHaveBeenCalled();
      expect(w.markKeys()).toHaveLength(1);
      info.mockClear();
    }
  });

  it('stops taking marks as soon as keepGoing() says no; the marks not taken stay pending', async () => {
    const w = world([A]);
    const created = [];
    for (const id of ['s1', 's2', 's3']) created.push(await w.marks.create([seg(id)], new Date(T0), 0));
    let allowed = 2;
    const outcome = await applyDueMarks(w.ctx(), new Date(T0), () => allowed-- > 0);
    expect(outcome).toMatchObject({ marksApplied: 2, segmentsDeleted: 2 });
    expect(w.markKeys()).toEqual([created[2]?.key]);
    expect(w.doc(created[2]?.key ?? '')?.state).toBe('pending');
  });

  it('a key a bucket refused keeps its mark (claimed, for the next run); the other marks are removed; each key counted once', async () => {
    const w = world();
    w.seed([seg('s1'), seg('s2'), seg('s3')]);
    const m1 = await w.marks.create([seg('s1'), seg('s2')], new Date(T0), 0);
    const m2 = await w.marks.create([seg('s3')], new Date(T0), 0);
    const m3 = await w.marks.create([seg('s3')], new Date(T0), 0);
    w.s3.keyError = (ref, key) => (ref.bucket === B.bucket && key === keyOf(seg('s2')) ? 'AccessDenied' : undefined);

    const outcome = await applyDueMarks(w.ctx(), new Date(T0), always);
    // Three distinct keys (s3 is in two marks) in one request per bucket; s2 is not gone from B.
    expect(w.s3.deleteSizes(A)).toEqual([3]);
    expect(outcome).toEqual({
      marksApplied: 2,
      segmentsDeleted: 3 - 1,
      deleteRequests: 2,
      deletedPerBucket: { [A.bucket]: 3, [B.bucket]: 3 - 1 },
      failures: [`s3://${B.bucket}/${keyOf(seg('s2'))}: AccessDenied`],
    });
    expect(w.s3.keys(B)).toEqual([keyOf(seg('s2'))]);
    expect(w.markKeys()).toEqual([m1.key]);
    expect(w.doc(m1.key)?.state).toBe('applying');
    expect([m2.key, m3.key].some((k) => w.markKeys().includes(k))).toBe(false);
  });

  it('a mark that cannot be removed is a failure and is not counted as applied', async () => {
    const w = world([A]);
    const m1 = await w.marks.create([seg('s1')], new Date(T0), 0);
    await w.marks.create([seg('s2')], new Date(T0), 0);
    w.s3.keyError = (ref, key) => (ref.bucket === STATE.bucket && key === m1.key ? 'InternalError' : undefined);
    const outcome = await applyDueMarks(w.ctx(), new Date(T0), always);
    expect(outcome.marksApplied).toBe(2 - 1);
    expect(outcome.segmentsDeleted).toBe(2);
    expect(outcome.failures).toEqual([`${w.marks.where}${m1.key}: mark not removed (InternalError); it is carried out again next run`]);
    expect(w.markKeys()).toEqual([m1.key]);
  });

  it('a damaged mark is reported, logged and left; the others are carried out', async () => {
    const w = world([A]);
    const damaged = formatDeletionMarkKey('', new Date(T0), 'ffffffffffffffff');
    w.s3.store(STATE, damaged, '{"version":1');
    await w.marks.create([seg('s1')], new Date(T0), 0);
    const error = vi.spyOn(logger, 'error').mockImplementation(() => undefined);
    const outcome = await applyDueMarks(w.ctx(), new Date(T0), always);
    expect(outcome.marksApplied).toBe(1);
    expect(outcome.failures).toHaveLength(1);
    expect(outcome.failures[0]).toMatch(new RegExp(`^${damaged}: deletion mark s3://${STATE.bucket}/${damaged} is not JSON`));
    expect(error).toHaveBeenCalledWith('cleanup could not claim a due deletion mark; it is left for the next run', expect.objectContaining({ mark: damaged, errorCode: 'DELETION_MARK_INVALID', errorMessage: expect.stringContaining('is not JSON') }));
    expect(w.markKeys()).toEqual([damaged]);
  });
});

describe('claiming a mark', () => {
  it('a claim that lost to a cancellation reads the mark again and carries out what is left of it', async () => {
    const w = world([A]);
    w.seed([seg('keep'), seg('drop')]);
    const mark = await w.marks.create([seg('keep'), seg('drop')], new Date(T0), 0);
    let raced = false;
    w.s3.beforePut = (ref, key) => {
      if (raced || key !== mark.key) return;
      raced = true;
      // An undelete of `keep` wins first: the mark no longer lists it, and the claim's If-Match fails.
      w.s3.store(ref, key, encodeMark({ ...mark.doc, segments: [seg('drop')] }));
    };
    const outcome = await applyDueMarks(w.ctx(), new Date(T0), always);
    expect(outcome).toMatchObject({ marksApplied: 1, segmentsDeleted: 1, failures: [] });
    expect(w.s3.keys(A)).toEqual([keyOf(seg('keep'))]);
  });

  it('a race lost every time ends after 10 claims, reported; the mark stays pending', async () => {
    const w = world([A]);
    const mark = await w.marks.create([seg('s1')], new Date(T0), 0);
    w.s3.puts.length = 0;
    w.s3.beforePut = () => {
      throw statusError(412);
    };
    const outcome = await applyMarks(w.ctx(), [mark.key], new Date(T0), always);
    expect(w.s3.puts.filter((p) => p.key === mark.key)).toHaveLength(10);
    expect(outcome).toMatchObject({ marksApplied: 0, segmentsDeleted: 0, failures: [`${mark.key}: PutObject failed: 412`] });
    expect(w.s3.deletes).toEqual([]);
    expect(w.doc(mark.key)?.state).toBe('pending');
  });

  for (const status of [403, 500]) {
    it(`a claim refused with ${status} is not a lost race: reported at once, after one attempt`, async () => {
      const w = world([A]);
      const mark = await w.marks.create([seg('s1')], new Date(T0), 0);
      w.s3.puts.length = 0;
      w.s3.beforePut = () => {
        throw statusError(status);
      };
      const outcome = await applyMarks(w.ctx(), [mark.key], new Date(T0), always);
      expect(w.s3.puts.filter((p) => p.key === mark.key)).toHaveLength(1);
      expect(outcome.failures).toEqual([`${mark.key}: PutObject failed: ${status}`]);
      expect(w.s3.deletes).toEqual([]);
    });
  }

  it('a mark removed by another run meanwhile (404 on the claim) is skipped without a failure', async () => {
    const w = world([A]);
    w.seed([seg('s1')]);
    const mark = await w.marks.create([seg('s1')], new Date(T0), 0);
    w.s3.beforePut = (ref, key) => {
      if (key !== mark.key) return;
      w.s3.remove(ref, key);
      throw statusError(404);
    };
    const outcome = await applyMarks(w.ctx(), [mark.key], new Date(T0), always);
    expect(outcome).toEqual({ marksApplied: 0, segmentsDeleted: 0, deleteRequests: 0, deletedPerBucket: {}, failures: [] });
    expect(w.s3.keys(A)).toEqual([keyOf(seg('s1'))]);
  });

  it('a mark already claimed (a run killed part-way) is carried out without claiming it again', async () => {
    const w = world([A]);
    w.seed([seg('s1')]);
    const mark = await w.marks.create([seg('s1')], new Date(T0), 0);
    await w.marks.replace(mark, { ...mark.doc, state: 'applying', claimed: new Date(T0).toISOString() });
    const puts = w.s3.puts.length;
    const outcome = await applyMarks(w.ctx(), [mark.key], new Date(T0 + HOUR), always);
    expect(w.s3.puts.length).toBe(puts);
    expect(outcome).toMatchObject({ marksApplied: 1, segmentsDeleted: 1, failures: [] });
    expect(w.s3.keys(A)).toEqual([]);
    expect(w.markKeys()).toEqual([]);
  });
});

describe('a dry run of due marks', () => {
  it('claims, deletes and removes nothing; counts the keys per bucket per group and logs a sample of each group', async () => {
    const w = world();
    const first = segs('m0', 600);
    const second = segs('m1', 500);
    w.seed([...first, ...second]);
    await w.marks.create(first, new Date(T0), 0);
    await w.marks.create(second, new Date(T0), 0);
    const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
    const outcome = await applyDueMarks(w.ctx(true), new Date(T0), always);
    // 600 + 500 do not fit one request: two groups, both counted.
    expect(outcome).toEqual({ marksApplied: 0, segmentsDeleted: 0, deleteRequests: 0, deletedPerBucket: { [A.bucket]: 600 + 500, [B.bucket]: 600 + 500 }, failures: [] });
    expect(info.mock.calls).toEqual([
      ['cleanup dry run: would delete', { keys: 600, buckets: [A.bucket, B.bucket], sample: first.slice(0, 10).map(keyOf) }],
      ['cleanup dry run: would delete', { keys: 500, buckets: [A.bucket, B.bucket], sample: second.slice(0, 10).map(keyOf) }],
    ]);
    expect(w.s3.deletes).toEqual([]);
    expect(w.s3.puts).toHaveLength(2); // the two creates, no claim
    expect(w.s3.keys(A)).toHaveLength(600 + 500);
    for (const key of w.markKeys()) expect(w.doc(key)?.state).toBe('pending');
  });
});

/** SQS in memory: what was asked, what it answers. */
class FakeSqs {
  readonly inbox: Message[] = [];
  readonly receives: ReceiveMessageCommandInput[] = [];
  readonly deleteBatches: DeleteMessageBatchCommandInput[] = [];
  /** Messages a receive returns at most. */
  perReceive = 10;
  onReceive: (() => void) | undefined;
  receiveError: unknown;
  /** Per DeleteMessageBatch (0-based): throws, or the entry ids SQS reports failed. */
  onDelete: ((n: number, input: DeleteMessageBatchCommandInput) => string[]) | undefined;

  async send(command: unknown): Promise<unknown> {
    if (command instanceof ReceiveMessageCommand) {
      this.receives.push(command.input);
      this.onReceive?.();
      if (this.receiveError !== undefined) throw this.receiveError;
      return { Messages: this.inbox.splice(0, this.perReceive) };
    }
    if (command instanceof DeleteMessageBatchCommand) {
      this.deleteBatches.push(command.input);
      const failed = this.onDelete?.(this.deleteBatches.length - 1, command.input) ?? [];
      return { Successful: [], Failed: failed.map((Id) => ({ Id, Code: 'ReceiptHandleIsInvalid', SenderFault: true })) };
    }
    throw new Error('unexpected command');
  }
  get client(): SQSClient {
    return this as unknown as SQSClient;
  }
  announce(ids: readonly string[]): void {
    for (const id of ids) this.inbox.push({ MessageId: `msg-${id}`, ReceiptHandle: `rh-${id}`, Body: JSON.stringify({ version: 1, dataspace: 'ds', segmentId: id }) });
  }
}

const received = (ids: readonly string[]): ReceivedDeletion[] => ids.map((id) => ({ message: { MessageId: `msg-${id}`, ReceiptHandle: `rh-${id}` }, identity: seg(id) }));

describe('marking received deletions', () => {
  it(`a mark holds at most ${MAX_SEGMENTS_PER_MARK} distinct segments: a repeat joins the full mark, a new segment starts the next`, async () => {
    const w = world();
    const sqs = new FakeSqs();
    const batch = new MarkingBatch(w.marks, new DeletionsQueue(sqs.client, QUEUE_URL, 30), 2, false);
    const ids = Array.from({ length: MAX_SEGMENTS_PER_MARK }, (_, i) => `s-${i}`);
    const deletions = [...received(ids), ...received([ids[0] ?? '']), ...received(['one-more'])];
    await batch.add(deletions, new Date(T0));
    await batch.flush(new Date(T0));
    const written = w.markKeys().map((k) => w.doc(k)?.segments.map(identityId));
    expect(written.map((s) => s?.length)).toEqual([MAX_SEGMENTS_PER_MARK, 1]);
    expect(written[1]).toEqual(['ds/one-more']);
    expect(batch.counts).toEqual({ marked: MAX_SEGMENTS_PER_MARK + 1, marksWritten: 2, completed: deletions.length, left: 0, earliestDue: new Date(T0 + 2 * HOUR), failures: [] });
    // Every message acknowledged, ten a request.
    expect(sqs.deleteBatches.flatMap((d) => d.Entries ?? [])).toHaveLength(deletions.length);
    expect(Math.max(...sqs.deleteBatches.map((d) => d.Entries?.length ?? 0))).toBe(10);
  });

  it('the earliest due time is the smallest of the marks written, in whatever order they were written', async () => {
    for (const times of [
      [T0, T0 + HOUR],
      [T0 + HOUR, T0],
    ]) {
      const w = world();
      const batch = new MarkingBatch(w.marks, new DeletionsQueue(new FakeSqs().client, QUEUE_URL, 30), 3, false);
      for (const [i, t] of times.entries()) {
        await batch.add(received([`s-${i}`]), new Date(t));
        await batch.flush(new Date(t));
      }
      expect(batch.counts).toMatchObject({ marksWritten: 2, marked: 2, completed: 2 });
      expect(batch.counts.earliestDue).toEqual(new Date(Math.min(...times) + 3 * HOUR));
    }
  });

  it('a dry run writes no mark and acknowledges nothing; it logs the distinct segments and a sample', async () => {
    const w = world();
    const sqs = new FakeSqs();
    const batch = new MarkingBatch(w.marks, new DeletionsQueue(sqs.client, QUEUE_URL, 30), 0, true);
    const ids = Array.from({ length: 11 }, (_, i) => `s-${i}`);
    const deletions = received([...ids, ids[3] ?? '']);
    const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
    await batch.add(deletions, new Date(T0));
    await batch.flush(new Date(T0));
    expect(info).toHaveBeenCalledWith('cleanup dry run: would mark for deletion', { segments: ids.length, sample: ids.slice(0, 10).map((id) => `ds/${id}`) });
    expect(batch.counts).toEqual({ marked: 0, marksWritten: 0, completed: 0, left: deletions.length, earliestDue: undefined, failures: [] });
    expect(w.s3.puts).toEqual([]);
    expect(sqs.deleteBatches).toEqual([]);
  });

  it('a mark that cannot be written leaves its messages on the queue, reported and logged', async () => {
    const w = world();
    const sqs = new FakeSqs();
    w.s3.beforePut = () => {
      throw statusError(403);
    };
    const error = vi.spyOn(logger, 'error').mockImplementation(() => undefined);
    const batch = new MarkingBatch(w.marks, new DeletionsQueue(sqs.client, QUEUE_URL, 30), 0, false);
    await batch.add(received(['s1', 's2', 's3']), new Date(T0));
    await batch.flush(new Date(T0));
    expect(batch.counts).toEqual({ marked: 0, marksWritten: 0, completed: 0, left: 3, earliestDue: undefined, failures: [`deletion mark in ${w.marks.where}: PutObject failed: 403`] });
    expect(error).toHaveBeenCalledWith('cleanup could not write a deletion mark; its messages stay on the queue', expect.objectContaining({ segments: 3, errorMessage: 'PutObject failed: 403' }));
    expect(sqs.deleteBatches).toEqual([]);
  });

  it('messages SQS did not confirm deleting (per entry, or a whole failed request) count as left, not completed', async () => {
    const w = world();
    const sqs = new FakeSqs();
    sqs.onDelete = (n) => {
      if (n === 0) return ['4'];
      throw new Error('socket hang up');
    };
    const warn = vi.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const batch = new MarkingBatch(w.marks, new DeletionsQueue(sqs.client, QUEUE_URL, 30), 0, false);
    const ids = Array.from({ length: 15 }, (_, i) => `s-${i}`);
    await batch.add(received(ids), new Date(T0));
    await batch.flush(new Date(T0));
    // First request of 10: one entry failed; second request of 5: failed as a whole.
    expect(batch.counts).toMatchObject({ marked: 15, marksWritten: 1, completed: 10 - 1, left: 1 + 5 });
    expect(warn).toHaveBeenCalledWith('cleanup could not delete marked messages from the queue; they come back and are marked again', expect.objectContaining({ messages: 5, errorMessage: `DeleteMessageBatch ${QUEUE_URL} failed: Error: socket hang up` }));
  });
});

describe('the deletions queue', () => {
  it('receives up to 10 with the visibility asked; malformed messages are counted and logged, not returned', async () => {
    const sqs = new FakeSqs();
    sqs.announce(['good']);
    sqs.inbox.push({ MessageId: 'empty', Body: '', Attributes: { ApproximateReceiveCount: '1' } }, { MessageId: 'no-body', Attributes: { ApproximateReceiveCount: '2' } });
    const error = vi.spyOn(logger, 'error').mockImplementation(() => undefined);
    const got = await new DeletionsQueue(sqs.client, QUEUE_URL, 42).receive(3);
    expect(sqs.receives[0]).toMatchObject({ QueueUrl: QUEUE_URL, MaxNumberOfMessages: 10, WaitTimeSeconds: 3, VisibilityTimeout: 42 });
    expect(got.received).toBe(3);
    expect(got.malformed).toBe(2);
    expect(got.deletions.map((d) => d.identity)).toEqual([seg('good')]);
    expect(error).toHaveBeenCalledTimes(2);
    const [[message, empty], [, noBody]] = error.mock.calls as [[string, Record<string, unknown>], [string, Record<string, unknown>]];
    expect(message).toBe('malformed deletion announcement; left on the queue for the DLQ');
    expect(empty).toMatchObject({ messageId: 'empty', receiveCount: '1', errorMessage: expect.stringContaining('body is not JSON') });
    // A message without a body is read as an empty one.
    expect(noBody).toMatchObject({ messageId: 'no-body', receiveCount: '2', errorMessage: empty.errorMessage });
  });

  it('a failed receive is a StorageError naming ReceiveMessage and the queue', async () => {
    const sqs = new FakeSqs();
    sqs.receiveError = new Error('socket hang up');
    const err = await new DeletionsQueue(sqs.client, QUEUE_URL, 30).receive(0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ message: `ReceiveMessage ${QUEUE_URL} failed: Error: socket hang up`, operation: 'ReceiveMessage' });
  });

  it('acknowledges ten messages a request, never an empty request; a message without a receipt handle sends an empty one', async () => {
    const sqs = new FakeSqs();
    const queue = new DeletionsQueue(sqs.client, QUEUE_URL, 30);
    expect(await queue.acknowledge([])).toBe(0);
    expect(sqs.deleteBatches).toEqual([]);
    const ten = received(Array.from({ length: 10 }, (_, i) => `s-${i}`));
    expect(await queue.acknowledge([...ten.slice(1), { message: { MessageId: 'x' }, identity: seg('x') }])).toBe(10);
    expect(sqs.deleteBatches).toHaveLength(1);
    expect(sqs.deleteBatches[0]?.Entries?.at(-1)).toEqual({ Id: '9', ReceiptHandle: '' });
  });
});

describe('a cleanup run', () => {
  const config = (extra: Record<string, string> = {}) =>
    loadConfig({ S3_STORAGE_BUCKET: A.bucket, S3_STORAGE_REGION: REGION, S3_STORAGE_ENCRYPTION_KEY: 'off', AWS_REGION: REGION, S3_STORAGE_DELETIONS_QUEUE_URL: QUEUE_URL, S3_STORAGE_DELETION_DELAY_HOURS: '0', ...extra });
  /** A runtime on the in-memory stores; the clock moves only where a test moves it. */
  function setup(extra: Record<string, string> = {}) {
    const w = world([A]);
    const sqs = new FakeSqs();
    const clock = { t: T0 };
    const runtime: CleanupRuntime = { config: config(extra), registry: new SingleBucketRegistry(A), deletions: w.marks, store: w.s3, clients: { sqs: sqs.client } };
    return { w, sqs, clock, runtime, now: () => clock.t };
  }

  it('receives while more than the safety margin (a quarter of the budget, at most 30 s) is left; messages hidden the budget plus a margin', async () => {
    const { sqs, clock, runtime, now } = setup();
    sqs.announce(Array.from({ length: 10 }, (_, i) => `s-${i}`));
    sqs.perReceive = 1;
    const step = 15_000;
    sqs.onReceive = () => void (clock.t += step);
    const budgetMs = 60_000;
    const report = await runCleanupOnce(runtime, { budgetMs, now });
    // Margin min(30 s, 60 s / 4) = 15 s: receives at 60, 45 and 30 s left, none at 15 s left.
    const receives = (budgetMs - budgetMs / 4) / step;
    expect(sqs.receives).toHaveLength(receives);
    expect(report).toMatchObject({ received: receives, marked: receives });
    for (const r of sqs.receives) expect(r.VisibilityTimeout).toBe(budgetMs / 1000 + VISIBILITY_MARGIN_SECONDS);
  });

  it('never waits on a receive beyond what is left before the margin', async () => {
    const { sqs, runtime, now } = setup();
    await runCleanupOnce(runtime, { budgetMs: 60_000, safetyMarginMs: 57_500, now });
    // 2.5 s left before the margin: whole seconds, rounded down.
    expect(sqs.receives.map((r) => r.WaitTimeSeconds)).toEqual([2]);
  });

  it('with no delay, carries out the marks it wrote while the deadline is not reached, and counts every request', async () => {
    const { w, sqs, clock, runtime, now } = setup();
    w.seed([seg('old'), seg('s1'), seg('s2')]);
    await w.marks.create([seg('old')], new Date(T0), 0);
    sqs.announce(['s1', 's2']);
    sqs.onReceive = () => void (clock.t += 20_000);
    const report = await runCleanupOnce(runtime, { budgetMs: 60_000, now });
    // One DeleteObjects for the mark already due, one for the mark this run wrote.
    expect(report).toMatchObject({ marked: 2, completed: 2, marksApplied: 2, segmentsDeleted: 3, deleteRequests: 2, failures: [] });
    expect(w.s3.keys(A)).toEqual([]);
    expect(w.markKeys()).toEqual([]);
  });

  it('at the deadline, leaves the marks it wrote for the next run', async () => {
    const { w, sqs, clock, runtime, now } = setup();
    w.seed([seg('s1'), seg('s2')]);
    sqs.announce(['s1', 's2']);
    const budgetMs = 60_000;
    sqs.onReceive = () => void (clock.t = T0 + budgetMs);
    const report = await runCleanupOnce(runtime, { budgetMs, now });
    expect(report).toMatchObject({ marked: 2, completed: 2, marksApplied: 0, segmentsDeleted: 0 });
    expect(w.s3.keys(A)).toHaveLength(2);
    expect(w.markKeys().map((k) => w.doc(k)?.state)).toEqual(['pending']);
  });

  it('a failed receive ends the draining, reported and logged; what was received is still marked', async () => {
    const { w, sqs, runtime, now } = setup({ S3_STORAGE_DELETION_DELAY_HOURS: '1' });
    sqs.announce(['s1']);
    sqs.onReceive = () => {
      if (sqs.receives.length === 2) sqs.receiveError = new Error('socket hang up');
    };
    const error = vi.spyOn(logger, 'error').mockImplementation(() => undefined);
    const report = await runCleanupOnce(runtime, { budgetMs: 60_000, now });
    const failure = `ReceiveMessage ${QUEUE_URL} failed: Error: socket hang up`;
    expect(report).toMatchObject({ received: 1, marked: 1, failures: [failure] });
    expect(error).toHaveBeenCalledWith('cleanup could not receive from the deletions queue; the rest waits for the next run', expect.objectContaining({ errorMessage: failure }));
    expect(w.markKeys()).toHaveLength(1);
  });
});

describe('delete --now', () => {
  function setup() {
    const w = world([A]);
    const runtime = { config: loadConfig({ S3_STORAGE_BUCKET: A.bucket, S3_STORAGE_REGION: REGION, S3_STORAGE_ENCRYPTION_KEY: 'off' }), registry: new SingleBucketRegistry(A), store: w.s3, deletions: w.marks } as unknown as Pick<Runtime, 'config' | 'registry' | 'store' | 'deletions'>;
    return { w, runtime };
  }

  it('takes the segment out of the other pending marks only once its deletion is carried out', async () => {
    const { w, runtime } = setup();
    w.seed([seg('now')]);
    const other = await w.marks.create([seg('now'), seg('else')], new Date(T0), 72);
    w.s3.bucketError = () => new Error('AccessDenied');
    const failed = await deleteSegmentNow(runtime, seg('now'), new Date(T0));
    expect(failed).toMatchObject({ marksApplied: 0, cancelledElsewhere: 0 });
    expect(w.doc(other.key)?.segments).toEqual([seg('now'), seg('else')]);

    w.s3.bucketError = undefined;
    const done = await deleteSegmentNow(runtime, seg('now'), new Date(T0));
    expect(done).toMatchObject({ marksApplied: 1, cancelledElsewhere: 1 });
    expect(w.doc(other.key)?.segments).toEqual([seg('else')]);
  });

  it('another mark claimed meanwhile is no failure (the segment is deleted again, harmlessly); a refused cancellation is', async () => {
    const { w, runtime } = setup();
    const other = await w.marks.create([seg('now')], new Date(T0), 72);
    let claimed = false;
    w.s3.beforePut = (ref, key) => {
      if (key !== other.key || claimed) return;
      claimed = true;
      w.s3.store(ref, key, encodeMark({ ...other.doc, state: 'applying', claimed: new Date(T0).toISOString() }));
    };
    expect(await deleteSegmentNow(runtime, seg('now'), new Date(T0))).toMatchObject({ marksApplied: 1, cancelledElsewhere: 0 });

    const another = await w.marks.create([seg('again')], new Date(T0), 72);
    w.s3.beforePut = (_ref, key) => {
      if (key === another.key) throw statusError(403);
    };
    await expect(deleteSegmentNow(runtime, seg('again'), new Date(T0))).rejects.toThrow('PutObject failed: 403');
  });
});

describe('bucket storage size logger', () => {
  const OTHER_REGION = 'us-east-1';
  const sizeConfig = (intervalMinutes = 60) => ({ keyPrefix: '', sizeLogger: { enabled: true, intervalMinutes } });
  const registryOf = (current: BucketRef, all: readonly BucketRef[]): BucketRegistry => ({ current, searchOrder: async () => all, all: async () => all });
  const runtimeOf = (store: SizeLogRuntime['store'], all: readonly BucketRef[], intervalMinutes = 60): SizeLogRuntime => ({ config: sizeConfig(intervalMinutes), registry: registryOf(all[0] ?? A, all), store });
  const stateWith = async (doc: SizeLogDocument) => {
    const state = new MemorySizeLogState();
    expect(await state.write(doc)).toBe(true);
    return state;
  };
  const objects = (s3: MemoryS3, ref: BucketRef, sizes: readonly number[], tag = ref.bucket) => sizes.forEach((n, i) => s3.store(ref, keyOf(seg(`${tag}-${i}`)), 'x'.repeat(n)));

  it('the state in the state bucket: conditional writes, a lost race (412 or 409) is false, anything else throws', async () => {
    const s3 = new MemoryS3();
    const state = new S3SizeLogState(s3, STATE, storageSizeKey(''));
    expect(await state.read()).toBeUndefined();
    expect(await state.write({ version: 1 }, undefined)).toBe(true);
    const read = await state.read();
    expect(read?.doc).toEqual({ version: 1 });
    // Written with If-None-Match first: a second creation is a lost race.
    expect(await state.write({ version: 1 }, undefined)).toBe(false);
    for (const status of [412, 409]) {
      s3.beforePut = () => {
        throw statusError(status);
      };
      expect(await state.write({ version: 1 }, read?.etag)).toBe(false);
    }
    s3.beforePut = () => {
      throw statusError(403);
    };
    await expect(state.write({ version: 1 }, read?.etag)).rejects.toThrow('PutObject failed: 403');
    s3.beforePut = () => {
      throw new Error('socket hang up');
    };
    await expect(state.write({ version: 1 }, read?.etag)).rejects.toThrow('socket hang up');
  });

  it('the state of a runtime: in its state bucket when it has one, else kept in memory for that runtime', async () => {
    const s3 = new MemoryS3();
    const withBucket = { config: loadConfig({ S3_STORAGE_BUCKET: A.bucket, S3_STORAGE_REGION: REGION, S3_STORAGE_ENCRYPTION_KEY: 'off', AWS_REGION: REGION, S3_STORAGE_STATE_BUCKET: STATE.bucket, S3_STORAGE_OBJECT_KEY_PREFIX: 'p/' }), roleStore: s3 } as unknown as Pick<Runtime, 'config' | 'roleStore'>;
    expect(await sizeLogStateFor(withBucket).write({ version: 1, lastLoggedAt: new Date(T0).toISOString() }, undefined)).toBe(true);
    expect(s3.keys(STATE)).toEqual([storageSizeKey('p/')]);

    const plain = { config: loadConfig({ S3_STORAGE_BUCKET: A.bucket, S3_STORAGE_REGION: REGION, S3_STORAGE_ENCRYPTION_KEY: 'off' }), roleStore: s3 } as unknown as Pick<Runtime, 'config' | 'roleStore'>;
    const doc: SizeLogDocument = { version: 1, lastLoggedAt: new Date(T0).toISOString() };
    expect(await sizeLogStateFor(plain).write(doc, undefined)).toBe(true);
    expect(await sizeLogStateFor(plain).read()).toEqual({ doc, etag: undefined });
    expect(await sizeLogStateFor({ ...plain }).read()).toBeUndefined();
  });

  it('logs once the interval has passed since the last log, not a millisecond earlier', async () => {
    const s3 = new MemoryS3();
    objects(s3, A, [3]);
    const interval = 5;
    const last = new Date(T0).toISOString();
    const runtime = runtimeOf(s3, [A], interval);
    expect(await logStorageSize(runtime, await stateWith({ version: 1, lastLoggedAt: last }), { budgetMs: 60_000, now: () => T0 + interval * 60_000 - 1 })).toEqual({ status: 'not-due' });
    expect(await logStorageSize(runtime, await stateWith({ version: 1, lastLoggedAt: last }), { budgetMs: 60_000, now: () => T0 + interval * 60_000 })).toMatchObject({ status: 'logged' });
  });

  it('a measurement under way goes on within the interval; finished buckets are not listed again, and progress is carried over only to the same bucket in the same region', async () => {
    const s3 = new MemoryS3();
    const listed: string[] = [];
    const store: SizeLogRuntime['store'] = {
      list: (ref, prefix, startAfter) => {
        listed.push(`${ref.bucket}@${ref.region}`);
        return s3.list(ref, prefix, startAfter);
      },
    };
    const C: BucketRef = { bucket: 'bucket-c', region: REGION };
    objects(s3, A, [1, 2]);
    objects(s3, B, [10, 20, 30]);
    objects(s3, C, [5, 5], 'c');
    const state = await stateWith({
      version: 1,
      lastLoggedAt: new Date(T0).toISOString(),
      measuring: {
        startedAt: new Date(T0 + 1000).toISOString(),
        buckets: [
          { ...A, objects: 7, bytes: 70, complete: true },
          // B's progress was measured in another region: another bucket, not B's.
          { bucket: B.bucket, region: OTHER_REGION, objects: 100, bytes: 1000, complete: false, resumeAfter: keyOf(seg('bucket-b-1')) },
          // C had counted its first object (c-0 sorts before c-1) when the earlier run stopped.
          { ...C, objects: 1, bytes: 5, complete: false, resumeAfter: s3.keys(C)[0] },
        ],
      },
    });
    const outcome = await logStorageSize(runtimeOf(store, [A, B, C]), state, { budgetMs: 60_000, now: () => T0 + 60_000 });
    expect(outcome).toStrictEqual({
      status: 'logged',
      buckets: [
        { ...A, objects: 7, bytes: 70, complete: true },
        { ...B, objects: 3, bytes: 10 + 20 + 30, complete: true },
        { ...C, objects: 2, bytes: 5 + 5, complete: true },
      ],
    });
    expect(listed).toEqual([`${B.bucket}@${REGION}`, `${C.bucket}@${REGION}`]);
  });

  it('reports each bucket, current only by name and region; a bucket that cannot be listed is reported unavailable without holding the others back', async () => {
    const s3 = new MemoryS3();
    const current = A;
    const sameNameElsewhere: BucketRef = { bucket: A.bucket, region: OTHER_REGION };
    const broken: BucketRef = { bucket: 'bucket-broken', region: REGION };
    objects(s3, current, [4]);
    objects(s3, sameNameElsewhere, [6, 6]);
    objects(s3, B, [1, 1, 1]);
    const store: SizeLogRuntime['store'] = {
      list: async function* (ref, prefix, startAfter) {
        // The broken bucket's listing fails on its first page.
        if (ref.bucket === broken.bucket) throw new Error('AccessDenied');
        yield* s3.list(ref, prefix, startAfter);
      },
    };
    const info = vi.spyOn(logger, 'info').mockImplementation(() => undefined);
    const warn = vi.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const outcome = await logStorageSize(runtimeOf(store, [current, sameNameElsewhere, B, broken]), new MemorySizeLogState(), { budgetMs: 60_000, now: () => T0 });
    expect(outcome).toMatchObject({ status: 'logged' });
    expect(info.mock.calls).toEqual([
      ['bucket storage size', { ...current, current: true, segmentObjects: 1, bytes: 4 }],
      ['bucket storage size', { ...sameNameElsewhere, current: false, segmentObjects: 2, bytes: 12 }],
      ['bucket storage size', { ...B, current: false, segmentObjects: 3, bytes: 3 }],
    ]);
    expect(warn.mock.calls).toEqual([
      ['bucket storage size: the bucket cannot be listed', expect.objectContaining({ bucket: broken.bucket, errorMessage: 'AccessDenied' })],
      ['bucket storage size', { ...broken, current: false, unavailable: 'AccessDenied' }],
    ]);
  });

  it('no bucket is started at the deadline', async () => {
    const s3 = new MemoryS3();
    objects(s3, A, [1]);
    objects(s3, B, [1]);
    const clock = { t: T0 };
    const budgetMs = 10_000;
    const listed: string[] = [];
    const store: SizeLogRuntime['store'] = {
      list: async function* (ref, prefix, startAfter) {
        listed.push(ref.bucket);
        yield* s3.list(ref, prefix, startAfter);
        // A's only page took the whole budget.
        clock.t = T0 + budgetMs;
      },
    };
    const outcome = await logStorageSize(runtimeOf(store, [A, B]), new MemorySizeLogState(), { budgetMs, now: () => clock.t });
    expect(outcome).toEqual({ status: 'measuring', pending: [B.bucket] });
    expect(listed).toEqual([A.bucket]);
  });

  it('a listing stops between pages at the deadline, where it got to', async () => {
    const s3 = new MemoryS3();
    objects(s3, A, [1, 2]);
    const keys = s3.keys(A);
    const clock = { t: T0 };
    const budgetMs = 10_000;
    const store: SizeLogRuntime['store'] = {
      list: async function* (ref) {
        for (const key of keys) {
          const page = [{ key, size: s3.body(ref, key)?.length ?? 0, etag: undefined, lastModified: undefined }];
          // The first page takes the whole budget.
          clock.t = T0 + budgetMs;
          yield page;
        }
      },
    };
    const state = new MemorySizeLogState();
    const outcome = await logStorageSize(runtimeOf(store, [A]), state, { budgetMs, now: () => clock.t });
    expect(outcome).toEqual({ status: 'measuring', pending: [A.bucket] });
    expect((await state.read())?.doc.measuring?.buckets).toEqual([{ ...A, objects: 1, bytes: s3.body(A, keys[0] ?? '')?.length, complete: false, resumeAfter: keys[0] }]);
  });
});

describe('deleting keys from every bucket', () => {
  it(`sends at most ${KEYS_PER_REQUEST} keys a request to each bucket and counts every request`, async () => {
    const w = world([A, B]);
    const list = segs('many', 2 * KEYS_PER_REQUEST + KEYS_PER_REQUEST / 2);
    w.seed(list);
    const out = await deleteEverywhere(w.s3, [A, B], list.map(keyOf));
    const sizes = [KEYS_PER_REQUEST, KEYS_PER_REQUEST, KEYS_PER_REQUEST / 2];
    expect(w.s3.deleteSizes(A)).toEqual(sizes);
    expect(w.s3.deleteSizes(B)).toEqual(sizes);
    expect(out.requests).toBe(2 * sizes.length);
    expect(out.deletedPerBucket).toEqual({ [A.bucket]: list.length, [B.bucket]: list.length });
    expect(out.failedKeys.size).toBe(0);
    expect(w.s3.keys(A)).toEqual([]);
  });

  it('a bucket that fails as a whole fails every key, named in a failure and logged with the bucket', async () => {
    const w = world([A, B]);
    const list = segs('denied', 3);
    w.seed(list);
    w.s3.bucketError = (ref) => (ref.bucket === B.bucket ? new Error('AccessDenied') : undefined);
    const out = await deleteEverywhere(w.s3, [A, B], list.map(keyOf));
    expect([...out.failedKeys].sort()).toEqual(list.map(keyOf).sort());
    expect(out.failures).toEqual([`s3://${B.bucket}: AccessDenied`]);
    expect(w.s3.keys(A)).toEqual([]);
    expect(vi.mocked(logger.error).mock.calls).toEqual([['cleanup could not delete from a registered bucket; the deletion mark is kept for the next run', expect.objectContaining({ bucket: B.bucket })]]);
  });
});

describe('undelete', () => {
  it('a mark carried out between the read and the cancellation: "no longer pending", not success', async () => {
    const w = world([A]);
    const mark = await w.marks.create([seg('late')], new Date(T0), 72);
    w.s3.beforePut = (ref, key) => {
      if (key === mark.key) w.s3.remove(ref, key);
    };
    const undone = undeleteSegment({ deletions: w.marks }, seg('late'));
    await expect(undone).rejects.toBeInstanceOf(NoPendingDeletionError);
    await expect(undone).rejects.toThrow('is no longer pending: cleanup carried it out');
  });
});
