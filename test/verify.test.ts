/**
 * Acceptance 4: in a bucket of 200 segments, `verify` finds a deleted object, a truncated object, a flipped
 * byte and an object under an unknown key id, names each and exits non-zero; `--metadata` finds the deleted
 * one and the one under an unknown key id (and the truncated one, whose size disagrees with its metadata)
 * without a GET of any body. One segment and one dataspace can be verified alone.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { verifySegments } from '../src/verify/verifySegments.ts';
import { countRequests } from './support/fetchHarness.ts';
import { patternStream } from './support/sourceData.ts';

const BUCKET = 'verify-bucket';
const ids = Array.from({ length: 200 }, (_, i) => `seg-${String(i).padStart(3, '0')}`);
const DELETED = 'seg-013';
const TRUNCATED = 'seg-077';
const FLIPPED = 'seg-120';
const OTHER_KEY = 'seg-188';
let servers: LocalServers;
let root: string;
let env: Record<string, string>;
let runtime: Runtime;
let expectFile: string;

const keyOf = (id: string) => formatSegmentKey('', { dataspace: 'vf', segmentId: id });

async function upload(rt: Runtime, id: string): Promise<void> {
  const path = join(root, id);
  await pipeline(patternStream(70_000 + ids.indexOf(id), id), createWriteStream(path));
  await uploadSegment(rt, { version: 1, dataspace: 'vf', segmentId: id, source: `file://${path}` });
}

/** Rewrites an object's body, keeping its metadata (as damage at rest would). */
async function damage(s3: S3Client, id: string, change: (body: Buffer) => Buffer): Promise<void> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keyOf(id) }));
  const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: keyOf(id) }))).Body!.transformToByteArray());
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: keyOf(id), Body: change(body), Metadata: head.Metadata }));
}

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket(BUCKET);
  root = await mkdtemp(join(tmpdir(), 'bks-verify-'));
  await mkdir(join(root, 'restore'));
  env = { ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_ENCRYPTION_KEY: 'verify-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKL', S3_STORAGE_CHUNK_LOG2: '16', S3_STORAGE_SOURCE_ROOT: root, LOG_LEVEL: 'ERROR' };
  runtime = await createRuntime(env);
  for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map((id) => upload(runtime, id)));
  const s3 = runtime.clients.s3();
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: keyOf(DELETED) }));
  await damage(s3, TRUNCATED, (b) => b.subarray(0, b.length - 10));
  await damage(s3, FLIPPED, (b) => {
    b[b.length - 100] = (b[b.length - 100] ?? 0) ^ 0x01; // one bit, in the second (last) chunk
    return b;
  });
  // Written with a key this runtime does not know (neither current nor previous).
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: keyOf(OTHER_KEY) }));
  await upload(await createRuntime({ ...env, S3_STORAGE_ENCRYPTION_KEY: 'a-key-the-verifier-never-had-0123456789abcdefghijklmnopqrstuvwxyz' }), OTHER_KEY);
  expectFile = join(root, 'expected.txt');
  await writeFile(expectFile, `# the segments the cluster holds\n${ids.map((id) => `vf/${id}`).join('\n')}\n`);
}, 120_000);
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

async function cli(args: string[], stderr: PassThrough = new PassThrough()): Promise<{ code: number; out: string }> {
  const stdout = new PassThrough();
  const code = await main(['verify', ...args], { env, stdout, stderr });
  return { code, out: String(stdout.read() ?? '') };
}

describe('bucket-storage verify', () => {
  it('reads every object: finds and names the deleted, truncated, flipped and foreign-key objects, exits 1', async () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    const { code, out } = await cli(['--expect', expectFile], tty);
    expect(code).toBe(1);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^verified 199 objects in 1 bucket \(read and authenticated, [\d.]+ MiB\): 196 intact, 1 missing, 2 corrupt, 1 unreadable$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join(' ')).sort()).toEqual([`corrupt vf/${FLIPPED}`, `corrupt vf/${TRUNCATED}`, `missing vf/${DELETED}`, `unreadable vf/${OTHER_KEY}`].sort());
    // Printed in the order of where each was found (the missing one, found last, has a key and no s3:// URL).
    const wheres = lines.slice(1).map((l) => l.split(/\s+/)[2] ?? '');
    expect(wheres).toEqual([...wheres].sort((a, b) => a.localeCompare(b)));
    expect(out).toMatch(new RegExp(`corrupt\\s+vf/${FLIPPED}\\s+s3://${BUCKET}/${keyOf(FLIPPED)}\\s+AuthenticationError: authentication failed at chunk 1`));
    expect(out).toMatch(new RegExp(`corrupt\\s+vf/${TRUNCATED}\\s+s3://${BUCKET}/\\S+\\s+TruncatedError`));
    expect(out).toMatch(new RegExp(`unreadable vf/${OTHER_KEY}\\s+s3://${BUCKET}/\\S+\\s+UnknownKeyIdError`));
    expect(out).toMatch(new RegExp(`missing\\s+vf/${DELETED}\\s+${keyOf(DELETED)}\\s+in none of s3://${BUCKET}`));
    expect(String(tty.read())).toContain('verifying: 199/199 objects');
  });

  it('--metadata: finds the deleted and the foreign-key objects (and the truncated one) without a GET of any body', async () => {
    const counted = countRequests(runtime.clients.s3());
    const started = performance.now();
    const report = await verifySegments(runtime, { metadataOnly: true, expected: ids.map((segmentId) => ({ dataspace: 'vf', segmentId })) });
    const seconds = (performance.now() - started) / 1000;
    const commands = counted.requests.map((r) => r.command);
    expect(commands.filter((c) => c === 'GetObjectCommand')).toEqual([]);
    expect(commands.filter((c) => c === 'HeadObjectCommand')).toHaveLength(199);
    expect(report.findings.map((f) => `${f.kind} ${f.identity.segmentId}`)).toEqual(expect.arrayContaining([`missing ${DELETED}`, `unreadable ${OTHER_KEY}`, `corrupt ${TRUNCATED}`]));
    // The flipped byte needs the body: only the full verification sees it.
    expect(report.findings).toHaveLength(3);
    console.log(`verify --metadata: ${report.checked} objects in ${seconds.toFixed(2)} s (${Math.round(report.checked / seconds)} objects/s)`);
    const { code, out } = await cli(['--metadata', '--expect', expectFile]);
    expect(code).toBe(1);
    expect(out.split('\n')[0]).toBe('verified 199 objects in 1 bucket (metadata only, no body read): 197 intact, 1 missing, 1 corrupt, 1 unreadable');
  });

  it('one segment, or one dataspace', async () => {
    expect(await cli(['--dataspace', 'vf', '--segment', 'seg-001'])).toMatchObject({ code: 0, out: expect.stringMatching(/^verified 1 objects in 1 bucket .*: 1 intact, 0 missing, 0 corrupt, 0 unreadable\n$/) });
    const missing = await cli(['--dataspace', 'vf', '--segment', DELETED]);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(new RegExp(`^verified 0 objects in 1 bucket .*: 0 intact, 1 missing, 0 corrupt, 0 unreadable\\nmissing +vf/${DELETED} +${keyOf(DELETED)} +in none of s3://${BUCKET}\\n$`));
    expect(await cli(['--dataspace', 'elsewhere', '--metadata'])).toMatchObject({ code: 0, out: expect.stringMatching(/^verified 0 objects/) });
    expect((await cli(['--dataspace', 'vf', '--metadata'])).out).toMatch(/^verified 199 objects in 1 bucket/);
    expect((await cli(['--segment', 'seg-001'])).code).toBe(2);
  });
});
