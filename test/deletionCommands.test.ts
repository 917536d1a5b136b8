/**
 * Pending deletions as the operator and the upload path see them, on the embedded servers: `status` shows them
 * (count, oldest, next due), `undelete` cancels one, `delete --now` skips the delay for one segment (only with
 * --yes), and an upload announcement of a segment whose deletion is pending cancels it — at the cost of one
 * listing of the marks per few seconds, each mark read once per process.
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { PurgeQueueCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { main } from '../src/cli/main.ts';
import { DeletionMarks, PendingDeletionsIndex, readAllMarks, type MarkS3 } from '../src/core/deletionMarks/index.ts';
import { DeletionInProgressError } from '../src/core/errors.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';

const BUCKETS = ['del-old', 'del-new'];
const STATE = 'del-state';
const HOUR = 3_600_000;
let servers: LocalServers;
let queue: QueuePair;
let env: Record<string, string>;
let runtime: Runtime;
let dir: string;

const keyOf = (segmentId: string) => formatSegmentKey('', { dataspace: 'ds', segmentId });
async function keysIn(bucket: string): Promise<string[]> {
  const out = await runtime.clients.s3().send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((c) => c.Key ?? '').sort();
}
async function announceDeletion(...ids: string[]): Promise<void> {
  for (const segmentId of ids) await runtime.clients.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: JSON.stringify({ version: 1, dataspace: 'ds', segmentId }) }));
}
/** A cleanup run at `now`: the deletions announced so far become pending marks (24 h), due ones are carried out. */
const cleanupAt = (now: number) => runCleanupOnce(runtime, { budgetMs: 60_000, waitTimeSeconds: 0, now: () => now });

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const code = await main(args, { env, stdout, stderr });
  return { code, out: String(stdout.read() ?? ''), err: String(stderr.read() ?? '') };
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of [...BUCKETS, STATE]) servers.createBucket(b);
  queue = servers.createQueue('del-deletions');
  dir = await mkdtemp(join(tmpdir(), 'bks-deletions-'));
  env = { ...servers.env(), S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: STATE, S3_STORAGE_DELETIONS_QUEUE_URL: queue.url, S3_STORAGE_DELETION_DELAY_HOURS: '24', S3_STORAGE_SOURCE_ROOT: dir, LOG_LEVEL: 'CRITICAL' };
  // Two registered buckets: del-old, then del-new (current), registered as the upload path registers them.
  await (await createRuntime({ ...env, S3_STORAGE_BUCKET: 'del-old' })).registrar.ensureCurrentRegistered();
  env.S3_STORAGE_BUCKET = 'del-new';
  runtime = await createRuntime(env);
  await runtime.registrar.ensureCurrentRegistered();
});
afterAll(async () => {
  await servers?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await runtime.clients.sqs.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
  for (const b of [...BUCKETS, STATE]) {
    const keys = (await keysIn(b)).filter((k) => !k.endsWith('registry.json'));
    if (keys.length > 0) await runtime.store.deleteBatch({ bucket: b, region: servers.region }, keys);
  }
});

describe('pending deletions: status, undelete, delete --now', () => {
  it('status shows them; undelete cancels one (which then survives its due time); undelete again says why it cannot', async () => {
    for (const b of BUCKETS) for (const id of ['a', 'b', 'c']) await runtime.clients.s3().send(new PutObjectCommand({ Bucket: b, Key: keyOf(id), Body: 'x' }));
    await announceDeletion('a', 'b', 'c');
    const t0 = Date.parse('2026-11-20T10:00:00.000Z');
    await cleanupAt(t0);
    await announceDeletion('c');
    await cleanupAt(t0 + HOUR);

    const table = await cli(['status']);
    expect(table.out).toContain('pending deletions (grace period 24 h, marks in s3://');
    expect(table.out).toContain('3 pending, 0 being carried out, oldest recorded 2026-11-20T10:00:00.000Z, next due 2026-11-21T10:00:00.000Z');
    const status = await cli(['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out).pendingDeletions).toEqual({
      delayHours: 24,
      location: `s3://${STATE}/_bucket-storage/deletions/`,
      pending: 3,
      applying: 0,
      marks: 2,
      oldest: '2026-11-20T10:00:00.000Z',
      nextDue: '2026-11-21T10:00:00.000Z',
      damaged: [],
    });

    // A segment no mark lists is refused as never pending, whatever other marks hold (not "no longer pending").
    const unlisted = await cli(['undelete', '--dataspace', 'ds', '--segment', 'zz']);
    expect(unlisted.code).toBe(1);
    expect(unlisted.err).toMatch(/NoPendingDeletionError: no pending deletion of ds\/zz .*still in the deletions queue/);
    expect(JSON.parse((await cli(['status', '--json'])).out).pendingDeletions.pending).toBe(3);

    const undone = await cli(['undelete', '--dataspace', 'ds', '--segment', 'c']);
    expect(undone.code).toBe(0);
    expect(JSON.parse(undone.out).cancelled).toHaveLength(2); // c was announced twice: both marks
    expect(JSON.parse((await cli(['status', '--json'])).out).pendingDeletions.pending).toBe(2);

    const due = await cleanupAt(t0 + 25 * HOUR);
    expect(due).toMatchObject({ segmentsDeleted: 2, marksApplied: 2 });
    for (const b of BUCKETS) expect(await keysIn(b)).toEqual([keyOf('c')]);

    const again = await cli(['undelete', '--dataspace', 'ds', '--segment', 'c']);
    expect(again.code).toBe(1);
    expect(again.err.trim().split('\n')).toHaveLength(1);
    expect(again.err).toMatch(/NoPendingDeletionError: no pending deletion of ds\/c .*still in the deletions queue/);
  });

  it('delete --now refuses without --yes; with it, deletes from every bucket at once and takes the segment out of pending marks', async () => {
    for (const b of BUCKETS) for (const id of ['now', 'later']) await runtime.clients.s3().send(new PutObjectCommand({ Bucket: b, Key: keyOf(id), Body: 'x' }));
    await announceDeletion('now', 'later');
    await cleanupAt(Date.now());

    const refused = await cli(['delete', '--now', '--dataspace', 'ds', '--segment', 'now']);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/cannot be undone\. Add --yes to confirm/);
    for (const b of BUCKETS) expect(await keysIn(b)).toContain(keyOf('now'));

    const done = await cli(['delete', '--now', '--yes', '--dataspace', 'ds', '--segment', 'now']);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.out)).toMatchObject({ deletedNow: true, segmentsDeleted: 1, cancelledElsewhere: 1, deletedPerBucket: { 'del-old': 1, 'del-new': 1 } });
    for (const b of BUCKETS) expect(await keysIn(b)).toEqual([keyOf('later')]);
    const pending = (await readAllMarks(runtime.deletions)).read.flatMap((m) => m.doc.segments.map((s) => s.segmentId));
    expect(pending).toEqual(['later']);
  });

  it('delete without --now sends an announcement that waits out the delay', async () => {
    const sent = await cli(['delete', '--dataspace', 'ds', '--segment', 'queued']);
    expect(sent.code).toBe(0);
    expect(JSON.parse(sent.out)).toMatchObject({ version: 1, dataspace: 'ds', segmentId: 'queued', delayHours: 24 });
    expect((await cli(['delete', '--yes', '--dataspace', 'ds', '--segment', 'queued'])).code).toBe(2);
  });
});

describe('an upload announcement cancels a pending deletion', () => {
  async function source(id: string, bytes = 'segment bytes'): Promise<string> {
    await writeFile(join(dir, id), bytes);
    return `file://${join(dir, id)}`;
  }

  it('a stored segment announced again while its deletion is pending is kept past the due time', async () => {
    const announcement = { version: 1 as const, dataspace: 'ds', segmentId: 'revived', source: await source('revived') };
    expect(await uploadSegment(runtime, announcement)).toMatchObject({ outcome: 'uploaded', cancelledDeletions: 0 });
    await announceDeletion('revived', 'gone');
    const t0 = Date.now();
    await cleanupAt(t0);
    const fresh = await createRuntime(env); // another container: it reads the marks for the first time
    expect(await uploadSegment(fresh, announcement)).toMatchObject({ outcome: 'already-stored', cancelledDeletions: 1 });
    await cleanupAt(t0 + 25 * HOUR);
    expect(await keysIn('del-new')).toEqual([keyOf('revived')]);
  });

  it('a segment whose mark cleanup has claimed is refused for now (retryable), and stored afresh once the deletion is done', async () => {
    const announcement = { version: 1 as const, dataspace: 'ds', segmentId: 'claimed', source: await source('claimed') };
    await uploadSegment(runtime, announcement);
    await announceDeletion('claimed');
    const t0 = Date.now();
    await cleanupAt(t0);
    const [mark] = (await readAllMarks(runtime.deletions)).read;
    await runtime.deletions.replace(mark!, { ...mark!.doc, state: 'applying', claimed: new Date().toISOString() });
    const err = await uploadSegment(await createRuntime(env), announcement).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeletionInProgressError);
    expect((err as DeletionInProgressError).retryable).toBe(true);
    await cleanupAt(t0 + 25 * HOUR);
    expect(await keysIn('del-new')).toEqual([]);
    expect(await uploadSegment(await createRuntime(env), announcement)).toMatchObject({ outcome: 'uploaded', cancelledDeletions: 0 });
  });

  it('cost: a listing of the marks per few seconds, each mark read once per process, no PUT without a cancellation', async () => {
    await announceDeletion(...Array.from({ length: 25 }, (_, i) => `cost-${i}`));
    await cleanupAt(Date.now());
    const requests = { list: 0, get: 0, put: 0 };
    const s = runtime.store;
    const counting: MarkS3 = {
      list: async function* (ref, prefix) {
        requests.list++;
        yield* s.list(ref, prefix);
      },
      getSmall: async (ref, key) => (requests.get++, s.getSmall(ref, key)),
      putSmall: async (ref, key, body, condition) => (requests.put++, s.putSmall(ref, key, body, condition)),
      deleteBatch: (ref, keys) => s.deleteBatch(ref, keys),
    };
    let clock = 0;
    const deletions = new DeletionMarks(runtime.deletions.location, '', counting);
    const rt = { ...runtime, deletions, pendingDeletions: new PendingDeletionsIndex(deletions, { maxAgeMs: 5_000, now: () => clock }) };
    for (let i = 0; i < 10; i++) await uploadSegment(rt, { version: 1, dataspace: 'ds', segmentId: `new-${i}`, source: await source(`new-${i}`) });
    expect(requests).toEqual({ list: 1, get: 1, put: 0 });
    clock += 5_000;
    for (let i = 10; i < 20; i++) await uploadSegment(rt, { version: 1, dataspace: 'ds', segmentId: `new-${i}`, source: await source(`new-${i}`) });
    expect(requests).toEqual({ list: 2, get: 1, put: 0 });
    // A cancellation costs one conditional PUT of the mark (and the cached copy is updated, not read again).
    await uploadSegment(rt, { version: 1, dataspace: 'ds', segmentId: 'cost-3', source: await source('cost-3') });
    expect(requests).toEqual({ list: 2, get: 1, put: 1 });
  });
});
