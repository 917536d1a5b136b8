/**
 * Acceptance 3: `status` against a two-bucket registry shows, per bucket, the segment objects and their bytes
 * exactly as a listing of the bucket counts them (more than one listing page in the old bucket; foreign objects
 * and another prefix's segments not counted), marks the current bucket, and shows the queues; `--json` parses;
 * the default is a readable table; progress is shown on a terminal only.
 */
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { formatSegmentKey, parseSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';

const OLD = 'status-old';
const CURRENT = 'status-current';
const PREFIX = 'cluster-a/';
let servers: LocalServers;
let segments: QueuePair;
let env: Record<string, string>;
let s3: S3Client;

async function put(bucket: string, key: string, size: number): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(size, 7) }));
}

/** What a plain listing of `bucket` says: the keys our naming accepts under the prefix, and their bytes. */
async function listing(bucket: string): Promise<{ segments: number; bytes: number }> {
  let segmentsCount = 0;
  let bytes = 0;
  let token: string | undefined;
  do {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of out.Contents ?? []) {
      if (o.Key !== undefined && parseSegmentKey(PREFIX, o.Key) !== undefined) {
        segmentsCount++;
        bytes += o.Size ?? 0;
      }
    }
    token = out.NextContinuationToken;
  } while (token);
  return { segments: segmentsCount, bytes };
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of [OLD, CURRENT, 'status-state']) servers.createBucket(b);
  segments = servers.createQueue('status-segments');
  env = { ...servers.env(), S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_OBJECT_KEY_PREFIX: PREFIX, S3_STORAGE_STATE_BUCKET: 'status-state', S3_STORAGE_SEGMENTS_QUEUE_URL: segments.url, LOG_LEVEL: 'ERROR' };
  // The registry: the old bucket first, then the current one.
  await createRuntime({ ...env, S3_STORAGE_BUCKET: OLD });
  env = { ...env, S3_STORAGE_BUCKET: CURRENT };
  s3 = (await createRuntime(env)).clients.s3();
  // 1,050 segment objects in the old bucket (two listing pages), 3 in the current one, sizes that differ.
  // 50 at a time: a shared machine's loaded server times out connections when all go at once.
  for (let i = 0; i < 1050; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => put(OLD, formatSegmentKey(PREFIX, { dataspace: 'st', segmentId: `old-${i + j}` }), 1 + ((i + j) % 13))));
  }
  for (let i = 0; i < 3; i++) await put(CURRENT, formatSegmentKey(PREFIX, { dataspace: 'st', segmentId: `new-${i}` }), 1000 * (i + 1));
  // Not ours: a foreign object, and another prefix's segment.
  await Promise.all([put(OLD, 'notes/readme.txt', 5000), put(CURRENT, formatSegmentKey('cluster-b/', { dataspace: 'st', segmentId: 'theirs' }), 4000)]);
}, 120_000);
afterAll(async () => {
  await servers?.stop();
});

async function status(args: string[], stderr: PassThrough = new PassThrough()): Promise<string> {
  const stdout = new PassThrough();
  expect(await main(['status', ...args], { env, stdout, stderr })).toBe(0);
  return String(stdout.read());
}

describe('bucket-storage status', () => {
  it('--json: per-bucket segment objects and bytes match a listing; the current bucket is marked; queues', async () => {
    const doc = JSON.parse(await status(['--json'])) as { buckets: unknown[]; segmentsQueue: unknown; prefix: string };
    const old = await listing(OLD);
    const cur = await listing(CURRENT);
    expect(old.segments).toBe(1050);
    expect(cur).toEqual({ segments: 3, bytes: 6000 });
    expect(doc.buckets).toEqual([
      { bucket: OLD, region: servers.region, current: false, ...old },
      { bucket: CURRENT, region: servers.region, current: true, ...cur },
    ]);
    expect(doc.prefix).toBe(PREFIX);
    expect(doc.segmentsQueue).toMatchObject({ visible: 0, inFlight: 0, deadLetter: 0 });
  });

  it('by default, a readable table with the current bucket marked', async () => {
    const text = await status([]);
    const lines = text.split('\n');
    expect(lines[0]).toBe('prefix cluster-a/, encryption off');
    const old = await listing(OLD);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${OLD}\\s+${servers.region}\\s+1,050\\s+${(old.bytes / 1024).toFixed(1)} KiB$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${CURRENT}\\s+${servers.region}\\s+3\\s+5\\.9 KiB\\s+current$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^segments\s+0\s+0\s+0\s+DLQ after 3 receives$/));
    expect(lines).toContainEqual(expect.stringMatching(/^deletions\s+-\s+-\s+-\s+\(not configured\)$/));
  });

  it('shows listing progress on a terminal, and nothing when stderr is piped', async () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    await status([], tty);
    expect(String(tty.read())).toMatch(new RegExp(`listing s3://${OLD}: [\\d,]+ segment objects`));
    const piped = new PassThrough();
    await status([], piped);
    expect(piped.read()).toBeNull();
  });
});
