/**
 * bks-digest end to end on the embedded server: an upload with an announced sha256 seals it into the object's
 * metadata (cross-checked with an independent implementation: Python's hashlib.scrypt, cryptography's HKDF and
 * AESGCM), and a whole restore answers it without hashing; a bks-digest that does not open, a ranged restore or
 * an object without one are hashed as before.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { IntegrityError } from '../src/core/errors.ts';
import { logger } from '../src/core/logger.ts';
import { parseHeader } from '../src/core/format/index.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import type { SegmentAnnouncement } from '../src/core/messages.ts';
import { decodeObjectMetadata } from '../src/core/objectMetadata.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { openDigest, sealDigest } from '../src/core/sealedDigest.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { restoreAndCheck } from '../src/fetch/restoreAndCheck.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { patternBytes } from './support/sourceData.ts';

const SECRET = 'sealed-digest-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCD';
const BUCKET = 'sealed-digest';
const DATASPACE = 'sd';
const MiB = 1024 * 1024;
let servers: LocalServers;
let root: string;
let restoreRoot: string;
let runtime: Runtime;
let env: Record<string, string>;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const keyOf = (segmentId: string) => formatSegmentKey('', { dataspace: DATASPACE, segmentId });
const bucket = () => ({ bucket: BUCKET, region: servers.region });

beforeAll(async () => {
  servers = await startLocalServers({ port: 0 });
  servers.createBucket(BUCKET);
  root = await mkdtemp(join(tmpdir(), 'bks-sealed-digest-'));
  restoreRoot = await mkdtemp(join(tmpdir(), 'bks-sealed-digest-restore-'));
  env = {
    ...servers.env(),
    S3_STORAGE_BUCKET: BUCKET,
    S3_STORAGE_ENCRYPTION_KEY: SECRET,
    S3_STORAGE_SOURCE_ROOT: root,
    S3_STORAGE_RESTORE_ROOT: restoreRoot,
    S3_STORAGE_PART_SIZE_MIB: '5',
  };
  runtime = await createRuntime(env);
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
  await rm(restoreRoot, { recursive: true, force: true });
});

/** The object's user metadata as stored, raw and decoded. */
async function metadataOf(segmentId: string) {
  const raw = (await runtime.store.head(bucket(), keyOf(segmentId)))?.metadata ?? {};
  return { raw, meta: decodeObjectMetadata(raw) };
}

/** Uploads `bytes` as `segmentId`, announcing `announced` as their sha256 (null: none); answers the object's metadata. */
async function upload(segmentId: string, bytes: Buffer, announced: string | null) {
  const path = join(root, segmentId);
  await writeFile(path, bytes);
  const announcement: SegmentAnnouncement = { version: 1, dataspace: DATASPACE, segmentId, source: `file://${path}`, ...(announced === null ? {} : { sha256: announced }) };
  await uploadSegment(runtime, announcement);
  return metadataOf(segmentId);
}

/** The object's body and user metadata as stored. */
async function storedObject(segmentId: string): Promise<{ body: Buffer; metadata: Record<string, string> }> {
  const parts: Buffer[] = [];
  for await (const c of await runtime.store.get(bucket(), keyOf(segmentId))) parts.push(c as Buffer);
  return { body: Buffer.concat(parts), metadata: (await metadataOf(segmentId)).raw };
}

/** Writes `body` with `metadata` as the segment's object (a bucket writer tampering with it). */
async function putObject(segmentId: string, body: Buffer, metadata: Record<string, string>): Promise<void> {
  await runtime.clients.s3().send(new PutObjectCommand({ Bucket: BUCKET, Key: keyOf(segmentId), Body: body, Metadata: metadata }));
}

/** Rewrites the object with the same bytes and `metadata`. */
async function replaceMetadata(segmentId: string, metadata: Record<string, string>): Promise<void> {
  await putObject(segmentId, (await storedObject(segmentId)).body, metadata);
}

/** Plants, under the object's own key, a bks-digest that seals `digest`: the answer then shows where it came from. */
async function plantDigest(segmentId: string, digest: string): Promise<void> {
  const { raw, meta } = await metadataOf(segmentId);
  const key = await deriveKey(SECRET);
  await replaceMetadata(segmentId, { ...raw, 'bks-digest': sealDigest(key.master, parseHeader(meta?.header ?? Buffer.alloc(0)), { dataspace: DATASPACE, segmentId }, digest) });
}

async function restore(segmentId: string, range?: { start: number; end: number }, options: { rehash?: boolean; concurrency?: number; partSize?: number } = {}, rt: Runtime = runtime) {
  const target = join(restoreRoot, `${segmentId}${range ? '-range' : ''}`);
  const answer = await fetchSegment(rt, { dataspace: DATASPACE, segmentId, destination: `file://${target}`, ...(range ? { range } : {}) }, options);
  const written = await readFile(target);
  await rm(target);
  return { answer, written };
}

describe('bks-digest', () => {
  it('an announced sha256 is sealed into the metadata, as an independent implementation computes it; without one nothing is', async () => {
    const bytes = Buffer.from('hello, bucket-storage digest');
    const { raw, meta } = await upload('vector', bytes, sha256(bytes));
    expect(meta?.digest).toMatch(/^[A-Za-z0-9+/]{64}$/);
    // No plaintext digest in the metadata, in hex or base64.
    expect(Object.values(raw)).not.toContain(sha256(bytes));
    expect(Object.values(raw)).not.toContain(createHash('sha256').update(bytes).digest('base64'));
    const python = `
import base64, hashlib, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
secret, header_b64, identity, sealed = sys.argv[1:5]
master = hashlib.scrypt(secret.encode(), salt=b"bucket-storage/v1", n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
header = base64.b64decode(header_b64)
key = HKDF(algorithm=hashes.SHA256(), length=32, salt=header[16:48], info=b"bucket-storage/v1 sha256-seal " + identity.encode()).derive(master)
print(AESGCM(key).decrypt(bytes(12), base64.b64decode(sealed), header).hex())
`;
    const { stdout } = await promisify(execFile)('python3', ['-c', python, SECRET, meta?.header?.toString('base64') ?? '', `${DATASPACE}/vector`, meta?.digest ?? ''], { encoding: 'utf8' });
    expect(stdout.trim()).toBe(sha256(bytes));

    const none = await upload('unannounced', bytes, null);
    expect(none.meta?.digest).toBeUndefined();
    expect(none.raw['bks-digest']).toBeUndefined();
  });

  it.each([0, 1, 12 * MiB + 3])('a whole restore of %i bytes answers the sealed digest, and the bytes are the segment', async (size) => {
    const bytes = patternBytes(size, `whole-${size}`);
    await upload(`whole-${size}`, bytes, sha256(bytes));
    const { answer, written } = await restore(`whole-${size}`);
    expect(answer.sha256).toBe(sha256(bytes));
    expect(answer.bytesWritten).toBe(size);
    expect(written.equals(bytes)).toBe(true);
  });

  it('the answer comes from the seal, not from hashing: a digest sealed under the object own key is what it says', async () => {
    const bytes = patternBytes(3 * MiB, 'from-seal');
    await upload('from-seal', bytes, sha256(bytes));
    const other = 'ab'.repeat(32);
    await plantDigest('from-seal', other);
    const { answer, written } = await restore('from-seal');
    expect(answer.sha256).toBe(other);
    // The bytes themselves are authenticated by their tags whatever the metadata says.
    expect(written.equals(bytes)).toBe(true);

    // rehash (restoreAndCheck, the smoke test) hashes what it writes whatever bks-digest holds.
    expect((await restore('from-seal', undefined, { rehash: true })).answer.sha256).toBe(sha256(bytes));
    const target = join(restoreRoot, 'from-seal-checked');
    const checked = await restoreAndCheck(runtime, { dataspace: DATASPACE, segmentId: 'from-seal', destination: `file://${target}` }, { sha256: sha256(bytes), bytes: bytes.length });
    expect(checked.sha256).toBe(sha256(bytes));
    await rm(target);
  });

  it('a bks-digest that does not open is ignored and the restore hashes: one from another object of the same bytes, or altered', async () => {
    const bytes = patternBytes(2 * MiB + 11, 'moved');
    const { raw } = await upload('moved', bytes, sha256(bytes));
    const donor = await upload('donor', bytes, sha256(bytes));
    const key = await deriveKey(SECRET);
    // The donor's seal opens for the donor only (its salt and segment), never for this object.
    expect(openDigest(key.master, parseHeader(donor.meta?.header ?? Buffer.alloc(0)), { dataspace: DATASPACE, segmentId: 'donor' }, donor.meta?.digest ?? '')).toBe(sha256(bytes));
    await replaceMetadata('moved', { ...raw, 'bks-digest': donor.meta?.digest ?? '' });
    const warn = vi.spyOn(logger, 'warn');
    try {
      expect((await restore('moved')).answer.sha256).toBe(sha256(bytes));
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^bks-digest does not open/), { bucket: BUCKET, key: keyOf('moved') });
    } finally {
      warn.mockRestore();
    }

    const sealed = Buffer.from(raw['bks-digest'] ?? '', 'base64');
    sealed[0] = (sealed[0] ?? 0) ^ 1;
    await replaceMetadata('moved', { ...raw, 'bks-digest': sealed.toString('base64') });
    const altered = await restore('moved');
    expect(altered.answer.sha256).toBe(sha256(bytes));
    expect(altered.written.equals(bytes)).toBe(true);
  });

  it('a ranged restore hashes its range, and an object without bks-digest is hashed whole', async () => {
    const bytes = patternBytes(MiB + 100, 'ranged');
    await upload('ranged', bytes, sha256(bytes));
    const range = { start: 1000, end: 700_000 };
    const ranged = await restore('ranged', range);
    expect(ranged.answer.sha256).toBe(sha256(bytes.subarray(range.start, range.end + 1)));
    expect(ranged.written.equals(bytes.subarray(range.start, range.end + 1))).toBe(true);

    await upload('plainly-hashed', bytes, null);
    expect((await restore('plainly-hashed')).answer.sha256).toBe(sha256(bytes));
  });

  it('opens under the header read from the object, never the bks-header metadata: a body swapped for another upload of the segment is hashed', async () => {
    const first = patternBytes(MiB + 5, 'swap-first');
    const second = patternBytes(MiB + 5, 'swap-second');
    await upload('swap', first, sha256(first));
    const original = await storedObject('swap');
    // The same segment written again (a new salt), then its body put back under the first upload's metadata.
    await runtime.clients.s3().send(new DeleteObjectCommand({ Bucket: BUCKET, Key: keyOf('swap') }));
    await upload('swap', second, sha256(second));
    const replaced = await storedObject('swap');
    expect(replaced.metadata['bks-header']).not.toBe(original.metadata['bks-header']);
    await putObject('swap', replaced.body, original.metadata);
    const { answer, written } = await restore('swap');
    expect(written.equals(second)).toBe(true);
    expect(answer.sha256).toBe(sha256(second));
  });

  it('answers from the seal with ranged GETs in flight, and under a previous key after a rotation', async () => {
    const bytes = patternBytes(6 * MiB + 7, 'parallel');
    await upload('parallel', bytes, sha256(bytes));
    await plantDigest('parallel', 'cd'.repeat(32));
    const parallel = await restore('parallel', undefined, { concurrency: 4, partSize: MiB });
    expect(parallel.answer.sha256).toBe('cd'.repeat(32));
    expect(parallel.written.equals(bytes)).toBe(true);

    const rotated = await createRuntime({ ...env, S3_STORAGE_ENCRYPTION_KEY: `${SECRET}-next`, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: SECRET });
    await plantDigest('parallel', 'ef'.repeat(32));
    const old = await restore('parallel', undefined, {}, rotated);
    expect(old.answer.sha256).toBe('ef'.repeat(32));
    expect(old.written.equals(bytes)).toBe(true);
  });

  it.each([0, 1000])('an encrypted upload of %i bytes announced with a wrong sha256 fails and stores nothing, so no wrong bks-digest exists', async (size) => {
    await expect(upload(`wrong-${size}`, patternBytes(size, `wrong-${size}`), 'a'.repeat(64))).rejects.toBeInstanceOf(IntegrityError);
    expect(await runtime.store.head(bucket(), keyOf(`wrong-${size}`))).toBeUndefined();
  });
});
