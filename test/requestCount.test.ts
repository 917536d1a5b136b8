/**
 * The requests one segment costs, counted (README "Performance", cost per TiB): every command the runtime's
 * clients send while uploadSegment archives a segment and fetchSegment restores it to a file, on the embedded
 * servers, with a state bucket (registry and deletion marks as deployed). Two segments per run, so what a
 * container pays once (registry read, the marks' listing) is told apart from what each segment pays.
 *
 * Per segment of P parts (P = ceil(stored size / S3_STORAGE_PART_SIZE_MIB), the stored size is the plaintext
 * plus 16 bytes per 1 MiB chunk plus the header), the upload sends HeadObject (already stored?),
 * ListMultipartUploads (leftovers of a killed attempt), CreateMultipartUpload, P × UploadPart and
 * CompleteMultipartUpload (one PutObject instead when P = 1); the restore sends HeadObject and GetObject.
 * With R ranged GETs in flight (S3_STORAGE_RESTORE_CONCURRENCY > 1, the stack's 4) a segment announced with its
 * sha256 is restored in parts: HeadObject, one GetObject of the stored header's 48 bytes and one ranged GetObject
 * per part of whole chunks (planParts: Q = ceil(size / (chunks per part × chunk size))).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AwsClient } from '../src/core/clients.ts';
import { ciphertextSize, DEFAULT_CHUNK_LOG2 } from '../src/core/format/index.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { planParts } from '../src/fetch/partsToFile.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { patternStream } from './support/sourceData.ts';

const MiB = 2 ** 20;
let servers: LocalServers;
let root: string;
let runtime: Runtime;
const sent: string[] = [];

/** Every client of the runtime (S3, SQS, KMS) records the commands it sends. */
function counting(client: AwsClient): void {
  // One middleware for all three clients: their stacks differ only in the types of their inputs and outputs.
  (client as unknown as S3Client).middlewareStack.add(
    (next, context) => async (args) => {
      sent.push((context.commandName ?? '?').replace(/Command$/, ''));
      return next(args);
    },
    { step: 'initialize', name: 'requestCountTest' },
  );
}

function take(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of sent.splice(0)) counts[c] = (counts[c] ?? 0) + 1;
  return counts;
}

beforeAll(async () => {
  servers = await startLocalServers({ port: 0 });
  servers.createBucket('count-data');
  servers.createBucket('count-state');
  root = await mkdtemp(join(tmpdir(), 'bks-count-'));
  runtime = await createRuntime(
    {
      ...servers.env(),
      S3_STORAGE_BUCKET: 'count-data',
      S3_STORAGE_STATE_BUCKET: 'count-state',
      S3_STORAGE_ENCRYPTION_KEY: 'request-count-secret-0123456789abcdefghijklmnopqrstuvwxyz',
      S3_STORAGE_SOURCE_ROOT: root,
      S3_STORAGE_RESTORE_ROOT: root,
      S3_STORAGE_ACCESSKEY: 'local',
      S3_STORAGE_SECRETKEY: 'local',
    },
    { clients: { instrument: counting } },
  );
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

async function source(name: string, size: number): Promise<string> {
  const path = join(root, name);
  await pipeline(patternStream(size, name), createWriteStream(path));
  return path;
}

describe('requests per segment (cost per TiB in the README)', () => {
  it('an upload of P parts: HeadObject, ListMultipartUploads, CreateMultipartUpload, P × UploadPart, CompleteMultipartUpload; a restore: HeadObject, GetObject', async () => {
    const size = 40 * MiB;
    const parts = Math.ceil(ciphertextSize(size, DEFAULT_CHUNK_LOG2) / runtime.config.partSize);
    expect(parts).toBeGreaterThan(1);
    take(); // the cold start's registry read
    const uploads: Record<string, number>[] = [];
    const restores: Record<string, number>[] = [];
    for (const id of ['a', 'b']) {
      const path = await source(id, size);
      const result = await uploadSegment(runtime, { version: 1, dataspace: 'count', segmentId: id, source: `file://${path}` });
      expect(result.outcome).toBe('uploaded');
      uploads.push(take());
      const answer = await fetchSegment(runtime, { dataspace: 'count', segmentId: id, destination: `file://${join(root, `${id}.restored`)}` });
      expect(answer.sha256).toBe(createHash('sha256').update(await readFile(path)).digest('hex'));
      restores.push(take());
    }
    console.log(`requests per segment (${size / MiB} MiB, ${runtime.config.partSize / MiB} MiB parts: ${parts}): upload ${JSON.stringify(uploads)}, restore ${JSON.stringify(restores)}`);
    // The second segment pays no per-container request (the marks' listing is reused for a few seconds).
    expect(uploads[1]).toEqual({ HeadObject: 1, ListMultipartUploads: 1, CreateMultipartUpload: 1, UploadPart: parts, CompleteMultipartUpload: 1 });
    expect(restores[1]).toEqual({ HeadObject: 1, GetObject: 1 });
  });

  it('a restore in parts (segment announced with its sha256, 4 ranged GETs in flight): HeadObject, the header GetObject, one GetObject per part', async () => {
    const size = 40 * MiB;
    const path = await source('c', size);
    const sha256 = createHash('sha256').update(await readFile(path)).digest('hex');
    const result = await uploadSegment(runtime, { version: 1, dataspace: 'count', segmentId: 'c', source: `file://${path}`, sha256 });
    expect(result.outcome).toBe('uploaded');
    const parts = planParts(size, DEFAULT_CHUNK_LOG2, runtime.config.partSize).length;
    expect(parts).toBeGreaterThan(1);
    take();
    const answer = await fetchSegment(runtime, { dataspace: 'count', segmentId: 'c', destination: `file://${join(root, 'c.restored')}` }, { concurrency: 4 });
    expect(answer.sha256).toBe(sha256);
    const restore = take();
    console.log(`requests of a restore in parts (${size / MiB} MiB, ${parts} parts): ${JSON.stringify(restore)}`);
    expect(restore).toEqual({ HeadObject: 1, GetObject: 1 + parts });
  });
});
