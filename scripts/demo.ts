/**
 * `npm start`: the whole pipeline on one machine. Starts the embedded S3/SQS server, creates the bucket and the
 * segments queue with its DLQ, writes demo segments (a few KiB to 256 MiB), announces them through the CLI's
 * enqueue path, runs `serve` until the queue is drained, restores two segments (one whole, one range) and checks
 * them, switches to a fresh bucket (new segments there, old ones not copied), runs a cleanup that deletes one old
 * and one new segment from both buckets, and prints a summary. One poison announcement shows a bad message
 * ending in the DLQ.
 * DEMO_MAX_MIB shrinks the largest segment (tests); the default includes a 256 MiB segment.
 */
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { deletionAnnouncementSchema, segmentAnnouncementSchema } from '../src/core/messages.ts';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { sendMessage } from '../src/core/queues.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { measureStorage } from '../src/core/storageUsage.ts';
import { restoreAndCheck } from '../src/fetch/index.ts';
import { startLocalServers } from '../src/local/embeddedServers.ts';
import { serveQueue } from '../src/local/serve.ts';

const MiB = 1024 * 1024;
const maxMiB = Number(process.env.DEMO_MAX_MIB ?? 256);
const SIZES = [4 * 1024, 64 * 1024, 1 * MiB + 7, 5 * MiB, 17 * MiB, 64 * MiB, maxMiB * MiB].filter((s) => s <= maxMiB * MiB);

const say = (line: string) => process.stdout.write(`${line}\n`);
const MiBs = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** Streams `size` pseudo-random bytes to `path`, returning their SHA-256. */
async function writeSegment(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  let left = size;
  const source = new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const chunk = randomBytes(Math.min(left, MiB));
      left -= chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  await pipeline(source, createWriteStream(path));
  return hash.digest('hex');
}

async function main(): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'bucket-storage-demo-'));
  const sourceRoot = join(work, 'segments');
  const restoreRoot = join(work, 'restored');
  await Promise.all([mkdir(sourceRoot), mkdir(restoreRoot)]);
  const servers = await startLocalServers();
  try {
    const bucket = 'bucket-storage-demo';
    const freshBucket = 'bucket-storage-demo-2';
    for (const b of [bucket, freshBucket, 'bucket-storage-state']) servers.createBucket(b);
    const queue = servers.createQueue('segments', { maxReceiveCount: 2, visibilityTimeoutSeconds: 60 });
    const deletions = servers.createQueue('deletions', { maxReceiveCount: 3 });
    const env = {
      ...servers.env(),
      S3_STORAGE_BUCKET: bucket,
      S3_STORAGE_ENCRYPTION_KEY: randomBytes(48).toString('base64'),
      S3_STORAGE_SOURCE_ROOT: sourceRoot,
      S3_STORAGE_RESTORE_ROOT: restoreRoot,
      S3_STORAGE_SEGMENTS_QUEUE_URL: queue.url,
      S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
      S3_STORAGE_STATE_BUCKET: 'bucket-storage-state',
      // The demo shows deletions carried out in the run that marks them; deployments keep a grace period (72 h).
      S3_STORAGE_DELETION_DELAY_HOURS: '0',
      LOG_LEVEL: 'WARN',
      // Metric lines (EMF) are for CloudWatch; the summary below says what they would measure.
      POWERTOOLS_METRICS_DISABLED: 'true',
    };
    Object.assign(process.env, env); // the upload handler builds its runtime from the environment
    const runtime = await createRuntime(env);
    say(`embedded S3/SQS server on ${servers.endpoint}; bucket ${bucket}; segments queue with DLQ (2 receives)`);

    const segments: { id: string; size: number; sha256: string; sentAt: number }[] = [];
    for (const [i, size] of SIZES.entries()) {
      const id = `segment-${String(i).padStart(2, '0')}`;
      const sha256 = await writeSegment(join(sourceRoot, id), size);
      segments.push({ id, size, sha256, sentAt: Date.now() });
      await sendMessage(runtime.clients.sqs, runtime.config, { queue: 'segments', schema: segmentAnnouncementSchema, what: 'segment announcement',
        message: { version: 1, dataspace: 'demo', segmentId: id, source: `file://${join(sourceRoot, id)}`, size, sha256 } });
      say(`announced ${id}: ${(size / MiB).toFixed(2)} MiB`);
    }
    // A poison message: its source does not exist. It must end in the DLQ and harm nothing else.
    await sendMessage(runtime.clients.sqs, runtime.config, { queue: 'segments', schema: segmentAnnouncementSchema, what: 'segment announcement',
      message: { version: 1, dataspace: 'demo', segmentId: 'poison', source: `file://${join(sourceRoot, 'missing')}` } });
    say('announced poison: a segment whose source is missing (expected to reach the DLQ)');

    const { handler } = await import('../functions/upload.ts');
    const started = process.hrtime.bigint();
    const totals = await serveQueue({
      sqs: runtime.clients.sqs,
      queueUrl: queue.url,
      region: servers.region,
      handler,
      batchSize: 2, // small batches so progress shows; Lambda's default is 10
      retryDelaySeconds: 0,
      stopWhenIdleFor: 2,
      onBatch: (received, failed) => say(`serve: batch of ${received} handled, ${failed} failed`),
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const bytes = segments.reduce((s, x) => s + x.size, 0);
    // Upload lag: from each announcement to its object in the bucket (S3's LastModified: whole seconds).
    const lags = await Promise.all(
      segments.map(async (x) => {
        const head = await runtime.clients.s3().send(new HeadObjectCommand({ Bucket: bucket, Key: formatSegmentKey('', { dataspace: 'demo', segmentId: x.id }) }));
        return Math.max(0, ((head.LastModified?.getTime() ?? x.sentAt) - x.sentAt) / 1000);
      }),
    );
    lags.sort((a, b) => a - b);

    // Restores: one whole segment, one byte range of the largest, both checked against the source's digest.
    const whole = segments[Math.min(3, segments.length - 1)]!;
    await restoreAndCheck(runtime, { dataspace: 'demo', segmentId: whole.id, destination: `file://${join(restoreRoot, whole.id)}` }, { sha256: whole.sha256, bytes: whole.size });
    say(`restored ${whole.id} whole: ${whole.size} bytes, SHA-256 matches`);
    const largest = segments[segments.length - 1]!;
    const start = Math.floor(largest.size / 3);
    const end = start + 65535;
    const slice = createHash('sha256');
    for await (const c of createReadStream(join(sourceRoot, largest.id), { start, end })) slice.update(c as Buffer);
    await restoreAndCheck(runtime, { dataspace: 'demo', segmentId: largest.id, destination: `file://${join(restoreRoot, `${largest.id}.range`)}`, range: { start, end } }, { sha256: slice.digest('hex'), bytes: 65536 });
    say(`restored bytes ${start}-${end} of ${largest.id}: SHA-256 matches`);

    const listed = await runtime.clients.s3().send(new ListObjectsV2Command({ Bucket: bucket }));

    // Switch to a fresh bucket: a cold start with S3_STORAGE_BUCKET changed. New segments go to the new bucket;
    // an old one announced again is found in the old bucket and not copied.
    const switched = await createRuntime({ ...env, S3_STORAGE_BUCKET: freshBucket });
    say(`\nswitched to ${freshBucket}; registry: ${(await switched.registry.all()).map((r) => r.bucket).join(' → ')}`);
    for (const id of ['segment-new-1', 'segment-new-2']) {
      await writeSegment(join(sourceRoot, id), 100_000);
      const r = await uploadSegment(switched, { version: 1, dataspace: 'demo', segmentId: id, source: `file://${join(sourceRoot, id)}` });
      say(`uploaded ${id} to ${r.bucket}`);
    }
    const again = await uploadSegment(switched, { version: 1, dataspace: 'demo', segmentId: segments[0]!.id, source: `file://${join(sourceRoot, segments[0]!.id)}` });
    say(`announced ${segments[0]!.id} again: ${again.outcome} in ${again.bucket}`);
    // Cleanup: one old and one new segment deleted, from every registered bucket.
    for (const id of [segments[1]!.id, 'segment-new-1']) {
      await sendMessage(switched.clients.sqs, switched.config, { queue: 'deletions', schema: deletionAnnouncementSchema, what: 'deletion announcement', message: { version: 1, dataspace: 'demo', segmentId: id } });
    }
    const cleaned = await runCleanupOnce(switched, { budgetMs: 60_000 });
    say(`cleanup: ${cleaned.segmentsDeleted} segments deleted in ${cleaned.deleteRequests} DeleteObjects requests across ${Object.keys(cleaned.deletedPerBucket).length} buckets`);
    const count = async (b: string) => (await switched.clients.s3().send(new ListObjectsV2Command({ Bucket: b }))).KeyCount ?? 0;
    const afterOld = await count(bucket);
    const afterNew = await count(freshBucket);
    const dlq = await runtime.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.dlqUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
    const inDlq = Number(dlq.Attributes?.ApproximateNumberOfMessages ?? 0);
    const objects = listed.KeyCount ?? 0;
    // Storage used per registered bucket, as `bucket-storage status` measures it.
    const used = await Promise.all((await switched.registry.all()).map(async (ref) => ({ ref, used: await measureStorage(switched.store, ref, switched.config.keyPrefix) })));
    say('');
    say('summary');
    say(`  segments announced   ${segments.length} good + 1 poison`);
    say(`  bytes uploaded       ${(bytes / MiB).toFixed(1)} MiB in ${seconds.toFixed(1)} s (${(bytes / MiB / seconds).toFixed(1)} MiB/s, encrypted)`);
    say(`  records handled      ${totals.received} (${totals.failed} failed attempts, all of the poison message)`);
    say(`  upload lag           median ${(lags[Math.floor(lags.length / 2)] ?? 0).toFixed(0)} s, max ${(lags.at(-1) ?? 0).toFixed(0)} s from announcement to stored object (S3 LastModified, 1 s resolution)`);
    say(`  objects in bucket    ${objects}`);
    say(`  messages in DLQ      ${inDlq}`);
    say(`  restores checked     2 (one whole, one 64 KiB range)`);
    say(`  after switch+cleanup ${afterOld} objects in ${bucket}, ${afterNew} in ${freshBucket}`);
    for (const { ref, used: u } of used) {
      say(`  storage used         ${ref.bucket}${ref.bucket === switched.registry.current.bucket ? ' (current)' : ''}: ${u.objects} segment objects, ${MiBs(u.bytes)}`);
    }
    const usedOk = used.map((u) => u.used.objects).join(',') === `${afterOld},${afterNew}`;
    const ok = objects === segments.length && inDlq === 1 && afterOld === segments.length - 1 && afterNew === 1 && cleaned.completed === 2 && usedOk;
    say(ok ? 'demo OK' : 'demo FAILED: objects or DLQ count not as expected');
    return ok ? 0 : 1;
  } finally {
    await servers.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}\n`);
    process.exit(1);
  },
);
