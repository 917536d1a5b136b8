/**
 * Chaos: SQS itself fails. 1,000 announcements (10% poison) through `serve`, and then cleanup runs, while the
 * fault proxy answers 10% of every SQS request of theirs (ReceiveMessage, DeleteMessageBatch,
 * ChangeMessageVisibilityBatch, SendMessageBatch of the announcements) with a 500, a reset mid-answer, or a
 * 500 after SQS did the work (a receive whose messages are then invisible, a delete that happened, a send whose
 * retry sends the batch again), and twice during serve all of them for 7 s, longer than the SDK's retries, so
 * serve itself sees failed receives, deletes and visibility changes. Duplicates must be harmless: every good
 * segment stored once (one `uploaded` outcome per key, twins acknowledged as already stored), nothing lost, no
 * message processed into two objects, every poison message in the DLQ and no good one there, the announced
 * deletions done (cleanup runs in this process, as scheduled, until its queue is empty), nothing foreign deleted.
 *
 * Counted, not assumed: faults by kind (the proxy's counters), deliveries per message (serve's log lines),
 * uploads per key, segments checked by SHA-256, foreign deletions by listing. CHAOS_SCALE=small runs 300.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSegmentKey } from '../../src/core/objectKeys.ts';
import { runCleanupOnce } from '../../src/cleanup/runCleanup.ts';
import { createRuntime, type Runtime } from '../../src/core/runtime.ts';
import { fetchSegment } from '../../src/fetch/index.ts';
import { startLocalServers, type LocalServers } from '../../src/local/embeddedServers.ts';
import { startFaultProxy, type FaultProxy } from '../support/faultProxy.ts';
import { ContentChecks, ForeignKeys, poisonAnnouncement } from './observe.ts';
import { recordChaos, scaled } from './summary.ts';

const MESSAGES = scaled(1000, 300);
const SQS_OPERATIONS = /^AmazonSQS\.(ReceiveMessage|DeleteMessageBatch|ChangeMessageVisibilityBatch|SendMessageBatch)$/;

let servers: LocalServers;
let proxy: FaultProxy;
let dir: string;
/** While true, every SQS request fails: an outage longer than the SDK's retries (6 attempts, ~3 s of backoff). */
let outage = false;

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket('sqsf-bucket');
  proxy = await startFaultProxy({
    target: servers.endpoint,
    seed: 14,
    rules: [
      { match: (_m, _u, operation) => outage && SQS_OPERATIONS.test(operation), kinds: ['slowDown503', 'answerLost'], rate: 1 },
      { match: (_m, _u, operation) => SQS_OPERATIONS.test(operation), kinds: ['status500', 'resetMidBody', 'answerLost'], rate: 0.1 },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), 'bks-sqsf-'));
});
afterAll(async () => {
  await proxy?.stop();
  await servers?.stop();
  await rm(dir, { recursive: true, force: true });
});


const contentOf = (i: number, size: number) => Buffer.alloc(size, (i * 31) % 251);

/** Messages in a queue, visible or in flight (read directly from the server). */
async function queuedIn(runtime: Runtime, url: string): Promise<number> {
  const a = (await runtime.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes;
  return Number(a?.ApproximateNumberOfMessages ?? 0) + Number(a?.ApproximateNumberOfMessagesNotVisible ?? 0);
}

/** Every message of a queue, read directly from the server (not through the proxy) until it is empty. */
async function drainBodies(sqs: SQSClient, url: string): Promise<string[]> {
  const bodies: string[] = [];
  for (let empty = 0; empty < 2; ) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 600 }));
    const got = out.Messages ?? [];
    if (got.length === 0) empty++;
    bodies.push(...got.map((m) => m.Body ?? ''));
  }
  return bodies;
}

describe('SQS faults', () => {
  it(`${MESSAGES} announcements with 10% poison while 10% of SQS requests fail: duplicates harmless, nothing lost`, async () => {
    // As the stack: a message reaches the DLQ after 5 receives. A short visibility timeout brings back the
    // messages of a receive whose answer was lost within the run.
    const queue = servers.createQueue('sqsf-segments', { maxReceiveCount: 5, visibilityTimeoutSeconds: 4 });
    const deletions = servers.createQueue('sqsf-deletions', { maxReceiveCount: 5, visibilityTimeoutSeconds: 4 });
    const direct = { ...servers.env(), S3_STORAGE_BUCKET: 'sqsf-bucket', S3_STORAGE_ENCRYPTION_KEY: 'sqs-faults-secret-0123456789abcdefghijklmnopqrstuvwxyz', S3_STORAGE_SOURCE_ROOT: dir, S3_STORAGE_SEGMENTS_QUEUE_URL: queue.url, LOG_LEVEL: 'ERROR' };
    // S3 direct, SQS through the fault proxy.
    const faulty = { ...direct, AWS_ENDPOINT_URL_SQS: proxy.endpoint };
    const runtime = await createRuntime(direct);
    const nodeSqs = new SQSClient({ endpoint: proxy.endpoint, region: servers.region, credentials: { accessKeyId: 'node', secretAccessKey: 'node' } });

    const good: { id: string; n: number; size: number }[] = [];
    const poisonBodies = new Set<string>();
    const bodies: string[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      if (i % 10 === 9) {
        const body = poisonAnnouncement(i, 'sqsf', dir, 'seg-0');
        poisonBodies.add(body);
        bodies.push(body);
        continue;
      }
      const size = i % 50 === 0 ? 9 * 1024 * 1024 + i : 1 + ((i * 2654435761) % 60_000);
      const id = `seg-${i}`;
      await writeFile(join(dir, id), contentOf(i, size));
      good.push({ id, n: i, size });
      bodies.push(JSON.stringify({ version: 1, dataspace: 'sqsf', segmentId: id, source: `file://${join(dir, id)}`, size }));
    }
    // The ingestion node sends through the faults too: a batch whose answer was lost is sent again by the SDK.
    for (let i = 0; i < bodies.length; i += 10) {
      await nodeSqs.send(new SendMessageBatchCommand({ QueueUrl: queue.url, Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })) }));
    }

    // serve as an operator runs it; idle long enough (8 empty 1 s polls) for lost receives to come back.
    const child = spawn(process.execPath, ['bin/bucket-storage.mjs', 'serve', '--batch-size', '10', '--retry-delay', '0', '--until-idle', '8'], {
      env: { ...process.env, ...faulty, LOG_LEVEL: 'INFO', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    const outages = (async () => {
      // 3 s after the start, and 10 s after the first ended.
      for (const pauseS of [3, 10]) {
        await new Promise((r) => setTimeout(r, pauseS * 1000));
        outage = true;
        await new Promise((r) => setTimeout(r, 7_000));
        outage = false;
      }
    })();
    expect(await exited).toBe(0);
    await outages;
    const serveSaw = (what: string) => stderr.split(`serve: ${what} failed`).length - 1;
    const sqsFailures = { receive: serveSaw('ReceiveMessage'), delete: serveSaw('DeleteMessageBatch'), visibility: serveSaw('ChangeMessageVisibilityBatch') };
    const deliveries = new Map<string, number>();
    for (const m of stderr.matchAll(/"messageId": ?"([^"]+)"/g)) deliveries.set(m[1] ?? '', (deliveries.get(m[1] ?? '') ?? 0) + 1);
    const uploadsPerKey = new Map<string, number>();
    for (const m of stderr.matchAll(/"outcome": ?"uploaded",\s*"bucket": ?"[^"]+",\s*"key": ?"([^"]+)"/g)) uploadsPerKey.set(m[1] ?? '', (uploadsPerKey.get(m[1] ?? '') ?? 0) + 1);
    const alreadyStored = [...stderr.matchAll(/"outcome": ?"already-stored"/g)].length;
    const serveFaults = { ...proxy.counts };

    let keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await runtime.clients.s3().send(new ListObjectsV2Command({ Bucket: 'sqsf-bucket', ContinuationToken: token }));
      keys = keys.concat((out.Contents ?? []).map((c) => c.Key ?? ''));
      token = out.NextContinuationToken;
    } while (token);
    const keyOf = (id: string) => formatSegmentKey('', { dataspace: 'sqsf', segmentId: id });
    const expected = new Set(good.map((g) => keyOf(g.id)));
    const missing = [...expected].filter((k) => !keys.includes(k));
    const extra = keys.filter((k) => !expected.has(k));
    const uploadedTwice = [...uploadsPerKey.entries()].filter(([, n]) => n > 1).map(([k]) => k);

    // Cleanup through the same faults (no grace period: carried out in the same run): every 10th good segment.
    const deleted = new Set(good.filter((_, i) => i % 10 === 0).map((g) => g.id));
    const seeded = await ForeignKeys.seed(runtime.clients.s3(), 'sqsf-bucket', 'sqsf', [...deleted]);
    const announcements = [...deleted].map((segmentId) => JSON.stringify({ version: 1, dataspace: 'sqsf', segmentId }));
    for (let i = 0; i < announcements.length; i += 10) {
      await nodeSqs.send(new SendMessageBatchCommand({ QueueUrl: deletions.url, Entries: announcements.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })) }));
    }
    // Cleanup runs as scheduled, through the same faults, with no grace period (carried out in the same run) and
    // a 15 s budget: a receive whose answer was lost hides its messages for the run's visibility (budget + 10 s),
    // so runs follow each other until the queue is really empty (bounded: 3 minutes).
    const cleaner = await createRuntime({ ...faulty, S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url, S3_STORAGE_DELETION_DELAY_HOURS: '0' });
    const queued = () => queuedIn(runtime, deletions.url);
    let cleanupRuns = 0;
    for (const until = Date.now() + 180_000; Date.now() < until; ) {
      await runCleanupOnce(cleaner, { budgetMs: 15_000 });
      cleanupRuns++;
      if ((await queued()) === 0) break;
      await new Promise((r) => setTimeout(r, 2_000));
    }
    const foreignGone = await seeded.missing();

    const restoring = await createRuntime({ ...direct, S3_STORAGE_RESTORE_ROOT: dir });
    const checks = new ContentChecks();
    let deletionsMissed = 0;
    for (const g of good) {
      if (deleted.has(g.id)) {
        if ((await runtime.store.head({ bucket: 'sqsf-bucket', region: servers.region }, keyOf(g.id))) !== undefined) deletionsMissed++;
        continue;
      }
      const dest = join(dir, `restored-${g.id}`);
      try {
        await fetchSegment(restoring, { dataspace: 'sqsf', segmentId: g.id, destination: `file://${dest}` });
        await checks.compareFile(dest, createHash('sha256').update(contentOf(g.n, g.size)).digest('hex'));
      } catch (err) {
        checks.restoreFailed();
        console.error(`restore of ${g.id} failed: ${(err as Error).name}: ${(err as Error).message}`);
      }
      await rm(dest, { force: true });
    }
    const inDlq = await drainBodies(runtime.clients.sqs, queue.dlqUrl);
    const goodInDlq = inDlq.filter((b) => !poisonBodies.has(b));
    // SQS dead-letters a message after 5 receives whether or not they were acknowledged: a good message whose
    // receives and deletes kept being lost can reach the DLQ with its segment stored (a redrive then acknowledges
    // it as already stored). Only a good message in the DLQ whose segment is not stored is a loss.
    const goodInDlqNotStored = goodInDlq.filter((b) => !keys.includes(keyOf((JSON.parse(b) as { segmentId: string }).segmentId)));
    const poisonMissing = [...poisonBodies].filter((b) => !inDlq.includes(b));
    const counts = proxy.counts;
    const injected = counts.status500 + counts.slowDown503 + counts.resetMidBody + counts.answerLost;
    const twins = [...deliveries.values()].reduce((sum, n) => sum + n - 1, 0);
    recordChaos({
      scenario: `SQS: ${MESSAGES} msgs (10% poison) and a cleanup of ${deleted.size}, 10% of SQS requests failing`,
      faults: { status500: counts.status500, slowDown503: counts.slowDown503, resetMidBody: counts.resetMidBody, answerLost: counts.answerLost },
      retried: twins,
      segmentsChecked: checks.checked,
      losses: checks.losses + missing.length + goodInDlqNotStored.length,
      foreignDeletions: foreignGone.length,
      note: `SQS faults during serve: ${serveFaults.status500 + serveFaults.slowDown503 + serveFaults.resetMidBody + serveFaults.answerLost}, in all: ${injected}; SQS requests that failed after the SDK's retries, as serve logged them: ReceiveMessage ${sqsFailures.receive}, DeleteMessageBatch ${sqsFailures.delete}, ChangeMessageVisibilityBatch ${sqsFailures.visibility}; deliveries beyond the first: ${twins}; twins acknowledged as already stored: ${alreadyStored}; keys uploaded more than once: ${uploadedTwice.length}; DLQ messages: ${inDlq.length} for ${poisonBodies.size} poison (good ones dead-lettered after 5 receives, their segments stored: ${goodInDlq.length - goodInDlqNotStored.length}); cleanup runs: ${cleanupRuns}; announced segments still present: ${deletionsMissed}`,
    });
    expect(injected).toBeGreaterThan(MESSAGES / 100);
    expect(counts.answerLost).toBeGreaterThan(0);
    // The outages reached serve itself (not only the SDK's retries), and it went on.
    expect(sqsFailures.receive).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    expect(extra).toEqual([]); // no message became two objects, no poison became one
    expect(uploadsPerKey.size).toBe(good.length);
    expect(uploadedTwice).toEqual([]); // write once: a twin delivery never writes again
    expect(checks.losses).toBe(0);
    expect(checks.checked).toBe(good.length - deleted.size);
    expect(goodInDlqNotStored).toEqual([]);
    expect(poisonMissing).toEqual([]);
    expect(await queuedIn(runtime, queue.url)).toBe(0);
    expect(await queuedIn(runtime, deletions.url)).toBe(0);
    expect(deletionsMissed).toBe(0);
    expect(foreignGone).toEqual([]);
  });
});
