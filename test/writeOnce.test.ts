/**
 * Write once, enforced by S3 (moto_server enforces If-None-Match on PutObject and CompleteMultipartUpload, which
 * the embedded server ignores): two deliveries of the same announcement racing each other both succeed, exactly
 * one object is written, once, and neither aborts the other's multipart upload; the start-of-upload sweep aborts
 * only multipart uploads older than the upload timeout.
 */
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { fetchSegment } from '../src/fetch/index.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';
import { patternBytes } from './support/sourceData.ts';

const BUCKET = 'write-once';
const MiB = 1024 * 1024;
let moto: MotoServer | undefined;
let s3: S3Client;
let dir = '';
let env: Record<string, string>;

/** The requests a runtime's S3 client sent, by command, with the upload ids they named or created. */
interface Wire {
  readonly sent: { command: string; uploadId: string | undefined; status: number | undefined; ifNoneMatch: boolean }[];
  /** Resolves when a command of that name first succeeded. */
  done(command: string): Promise<void>;
  /** Holds every request of `command` until `until` resolves. */
  hold(command: string, until: Promise<void>): void;
}

/**
 * moto answers ListMultipartUploads with a fixed Initiated (2010-11-10T20:48:33Z) where S3 gives the real time,
 * so every upload would look abandoned. The test clients record when each CreateMultipartUpload returned and
 * put that time back into the listing, as S3 would answer.
 */
const initiatedAt = new Map<string, Date>();

function record(client: S3Client, wire: Wire['sent'], holds: Map<string, Promise<void>>, done: Map<string, () => void>): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '?';
      const input = args.input as { UploadId?: string; IfNoneMatch?: string };
      await holds.get(command);
      const entry = { command, uploadId: input.UploadId, status: undefined as number | undefined, ifNoneMatch: input.IfNoneMatch === '*' };
      wire.push(entry);
      try {
        const out = await next(args);
        const output = out.output as { UploadId?: string; Uploads?: { UploadId?: string; Initiated?: Date }[] };
        if (command === 'CreateMultipartUploadCommand' && output.UploadId !== undefined) {
          entry.uploadId = output.UploadId;
          initiatedAt.set(output.UploadId, new Date());
        }
        for (const u of output.Uploads ?? []) u.Initiated = initiatedAt.get(u.UploadId ?? '') ?? u.Initiated;
        entry.status = 200;
        done.get(command)?.();
        return out;
      } catch (err) {
        entry.status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        throw err;
      }
    },
    { step: 'initialize', name: 'recordRequests' },
  );
}

/** A runtime whose S3 client records (and can hold) every request it sends: one client per twin. */
async function recordingRuntime(extra: Record<string, string> = {}): Promise<{ runtime: Runtime; wire: Wire }> {
  const runtime = await createRuntime({ ...env, ...extra });
  const sent: Wire['sent'] = [];
  const holds = new Map<string, Promise<void>>();
  const resolvers = new Map<string, () => void>();
  const promises = new Map<string, Promise<void>>();
  const done = (command: string) => {
    let p = promises.get(command);
    if (p === undefined) promises.set(command, (p = new Promise<void>((resolve) => resolvers.set(command, resolve))));
    return p;
  };
  for (const c of ['CreateMultipartUploadCommand', 'CompleteMultipartUploadCommand', 'PutObjectCommand']) void done(c);
  record(runtime.clients.s3(), sent, holds, resolvers);
  return { runtime, wire: { sent, done, hold: (command, until) => void holds.set(command, until) } };
}

async function versionsOf(key: string): Promise<number> {
  const out = await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: key }));
  return (out.Versions ?? []).filter((v) => v.Key === key).length;
}

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } });
  record(s3, [], new Map(), new Map());
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  // Versioning shows every write of a key: "written once" is one version.
  await s3.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
  dir = await mkdtemp(join(tmpdir(), 'bks-write-once-'));
  env = {
    AWS_REGION: 'us-east-1',
    S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_ACCESSKEY: 'moto',
    S3_STORAGE_SECRETKEY: 'moto',
    S3_STORAGE_BUCKET: BUCKET,
    S3_STORAGE_REGION: 'us-east-1',
    S3_STORAGE_ENCRYPTION_KEY: 'write-once-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    S3_STORAGE_SOURCE_ROOT: dir,
    S3_STORAGE_RESTORE_ROOT: dir,
    S3_STORAGE_PART_SIZE_MIB: '5',
    LOG_LEVEL: 'ERROR',
  };
});
afterAll(async () => {
  moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('write once (moto_server)', () => {
  for (const [what, size] of [['multipart (12 MiB, 3 parts)', 12 * MiB + 7], ['single PUT (1 KiB)', 1024]] as const) {
    it(`${what}: two uploads of one announcement started together both succeed; one object, written once; neither aborts the other`, async () => {
      const id = `twin-${size}`;
      const bytes = patternBytes(size, id);
      await writeFile(join(dir, id), bytes);
      const announcement = { version: 1 as const, dataspace: 'twins', segmentId: id, source: `file://${join(dir, id)}` };
      const [a, b] = await Promise.all([recordingRuntime(), recordingRuntime()]);
      const multipart = size > 5 * MiB;
      const write = multipart ? 'CompleteMultipartUploadCommand' : 'PutObjectCommand';
      // B starts while A's multipart upload is in flight (its sweep sees A's upload); A completes only once B
      // is writing too, then B's write arrives second. moto checks If-None-Match before it stores, not
      // atomically with it, so the test orders the two writes; S3 itself settles simultaneous ones (412/409).
      if (multipart) a.wire.hold(write, b.wire.done('CreateMultipartUploadCommand'));
      b.wire.hold(write, a.wire.done(write));
      const first = uploadSegment(a.runtime, announcement);
      if (multipart) await a.wire.done('CreateMultipartUploadCommand');
      const results = await Promise.all([first, uploadSegment(b.runtime, announcement)]);

      expect(results.map((r) => r.outcome)).toEqual(['uploaded', 'already-stored']);
      const key = formatSegmentKey('', { dataspace: 'twins', segmentId: id });
      expect(await versionsOf(key)).toBe(1);
      // Both writes carried If-None-Match: *; S3 refused the second one (412).
      const writes = [...a.wire.sent, ...b.wire.sent].filter((r) => r.command === write);
      expect(writes.map((w) => [w.ifNoneMatch, w.status])).toEqual([[true, 200], [true, 412]]);
      if (multipart) {
        // B's sweep listed A's live upload and left it alone; each aborted at most its own upload (B's, after
        // its 412), never the other's.
        expect(b.wire.sent.some((r) => r.command === 'ListMultipartUploadsCommand')).toBe(true);
        const created = (w: Wire) => new Set(w.sent.filter((r) => r.command === 'CreateMultipartUploadCommand').map((r) => r.uploadId));
        const aborted = (w: Wire) => w.sent.filter((r) => r.command === 'AbortMultipartUploadCommand').map((r) => r.uploadId);
        expect(aborted(a.wire)).toEqual([]);
        expect(aborted(b.wire).every((u) => created(b.wire).has(u))).toBe(true);
      }
      expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).toEqual([]);
      await fetchSegment(a.runtime, { dataspace: 'twins', segmentId: id, destination: `file://${join(dir, `${id}.out`)}` });
      expect((await readFile(join(dir, `${id}.out`))).equals(bytes)).toBe(true);
    });
  }

  it('the start-of-upload sweep leaves a young multipart upload of the key alone and aborts one older than the upload timeout', async () => {
    const id = 'sweep';
    await writeFile(join(dir, id), patternBytes(2048, id));
    const key = formatSegmentKey('', { dataspace: 'twins', segmentId: id });
    const leftover = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const young = await recordingRuntime({ S3_STORAGE_UPLOAD_TIMEOUT_SECONDS: '900' });
    const ref = young.runtime.registry.current;
    expect(await young.runtime.store.abortIncompleteUploads(ref, key, new Date(Date.now() - 900_000))).toEqual({ aborted: 0, live: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    const old = await recordingRuntime({ S3_STORAGE_UPLOAD_TIMEOUT_SECONDS: '2' });
    expect(await uploadSegment(old.runtime, { version: 1, dataspace: 'twins', segmentId: id, source: `file://${join(dir, id)}` })).toMatchObject({ outcome: 'uploaded' });
    expect(old.wire.sent.filter((r) => r.command === 'AbortMultipartUploadCommand').map((r) => r.uploadId)).toEqual([leftover.UploadId]);
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).toEqual([]);
  });
});
