/**
 * "Already stored?" compares content, never only sizes, and never overwrites; with encryption `off` a source that
 * changes during the upload leaves nothing stored. bks-mac is cross-checked with an independent implementation
 * (Python: hashlib.scrypt, cryptography's HKDF, hmac).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, MalformedHeaderError } from '../src/core/errors.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import { decodeObjectMetadata, encodeObjectMetadata } from '../src/core/objectMetadata.ts';
import type { SegmentAnnouncement } from '../src/core/messages.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import type { S3Store } from '../src/core/s3Store.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment, type UploadRuntime } from '../src/upload/uploadSegment.ts';
import { patternBytes } from './support/sourceData.ts';
import { storeSegment } from './support/storeSegment.ts';

const SECRET = 'stored-copy-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';
const BUCKET = 'stored-copy';
const MiB = 1024 * 1024;
let servers: LocalServers;
let root: string;
let env: Record<string, string>;
let runtime: Runtime;
let off: Runtime;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const keyOf = (segmentId: string) => formatSegmentKey('', { dataspace: 'sc', segmentId });
const bucket = () => ({ bucket: BUCKET, region: servers.region });

async function source(name: string, bytes: Buffer): Promise<string> {
  const path = join(root, name);
  await writeFile(path, bytes);
  return path;
}

function announce(segmentId: string, path: string, extra: Partial<SegmentAnnouncement> = {}): SegmentAnnouncement {
  return { version: 1, dataspace: 'sc', segmentId, source: `file://${path}`, ...extra };
}

async function objectBytes(key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await runtime.store.get(bucket(), key)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A runtime whose S3 commands are recorded. */
function recording(rt: Runtime): { commands: string[]; stop(): void } {
  const commands: string[] = [];
  const name = `record-${Math.random()}`;
  rt.clients.s3().middlewareStack.add((next, c) => async (args) => (commands.push(c.commandName ?? ''), next(args)), { step: 'initialize', name });
  return { commands, stop: () => void rt.clients.s3().middlewareStack.remove(name) };
}

beforeAll(async () => {
  servers = await startLocalServers({ port: 0 });
  servers.createBucket(BUCKET);
  root = await mkdtemp(join(tmpdir(), 'bks-stored-copy-'));
  env = { ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_ENCRYPTION_KEY: SECRET, S3_STORAGE_SOURCE_ROOT: root, S3_STORAGE_PART_SIZE_MIB: '5' };
  runtime = await createRuntime(env);
  off = await createRuntime({ ...env, S3_STORAGE_ENCRYPTION_KEY: 'off' });
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('encryption off: a source rewritten during the upload', () => {
  it('stores nothing (the body fails before completion), and the retry stores the segment as it now is, intact', async () => {
    const size = 12 * MiB;
    const path = await source('rewritten', patternBytes(size, 'before'));
    const now = Buffer.concat([patternBytes(size - 4 * MiB, 'before'), patternBytes(4 * MiB, 'after')]);
    // The digest pass (no sha256 announced) reads the file as it was; when the upload starts, its last 4 MiB are
    // rewritten in place (the pipeline has read at most a few MiB ahead by then).
    let rewrites = 0;
    const rewriting: UploadRuntime = {
      ...off,
      store: Object.assign(Object.create(off.store) as S3Store, {
        async put(...args: Parameters<S3Store['put']>) {
          if (rewrites++ === 0) {
            const fd = openSync(path, 'r+');
            writeSync(fd, now.subarray(size - 4 * MiB), 0, 4 * MiB, size - 4 * MiB);
            closeSync(fd);
          }
          return off.store.put(...args);
        },
      }),
    };
    const err = await uploadSegment(rewriting, announce('rewritten', path)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'sha256', expected: sha256(patternBytes(size, 'before')), actual: sha256(now) });
    expect(await off.store.head(bucket(), keyOf('rewritten'))).toBeUndefined();

    const retry = await uploadSegment(off, announce('rewritten', path));
    expect(retry).toMatchObject({ outcome: 'uploaded', sha256: sha256(now) });
    expect((await objectBytes(keyOf('rewritten'))).equals(now)).toBe(true);
    const info = await off.store.head(bucket(), keyOf('rewritten'));
    expect(decodeObjectMetadata(info?.metadata ?? {})).toMatchObject({ format: 'plain', sha256: sha256(now) });
  });

  it('a stored plain object whose bytes do not match its bks-sha256 is refused as damaged, never acknowledged nor overwritten', async () => {
    // What the old defect left: bks-sha256 of the source, bytes of a source that changed meanwhile.
    const original = patternBytes(50_000, 'original');
    const path = await source('damaged', original);
    const key = keyOf('damaged');
    const mixed = Buffer.concat([original.subarray(0, 25_000), patternBytes(25_000, 'changed')]);
    await off.store.put(bucket(), key, Readable.from([mixed]), { metadata: encodeObjectMetadata({ format: 'plain', plaintextSize: 50_000, sha256: sha256(original) }), partSize: 5 * MiB, queueSize: 1 });
    const before = await off.store.head(bucket(), key);
    const rec = recording(off);
    const err = await uploadSegment(off, announce('damaged', path)).catch((e: unknown) => e);
    rec.stop();
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/is damaged \(its bytes do not match its bks-sha256\); it is never overwritten/);
    expect(rec.commands).not.toContain('PutObjectCommand');
    expect(rec.commands).not.toContain('CreateMultipartUploadCommand');
    expect((await off.store.head(bucket(), key))?.etag).toBe(before?.etag);
  });
});

describe('already stored: the announced sha256 is compared, a mismatch is refused and the object untouched', () => {
  const size = 70_000;
  const cases = [
    ['encrypted, with bks-mac', 'mac'],
    ['encrypted, an older object without bks-mac', 'legacy'],
    ['plain (encryption off)', 'plain'],
  ] as const;
  it.each(cases)('%s', async (_name, kind) => {
    const id = `same-size-${kind}`;
    const rt = kind === 'plain' ? off : runtime;
    const first = patternBytes(size, `${id}-first`);
    const path = await source(id, first);
    if (kind === 'legacy') {
      await storeSegment(runtime.store, bucket(), { dataspace: 'sc', segmentId: id }, size, `${id}-first`, { key: await deriveKey(SECRET), partSize: 5 * MiB });
    } else {
      await uploadSegment(rt, announce(id, path, { sha256: sha256(first) }));
    }
    const stored = await rt.store.head(bucket(), keyOf(id));
    expect(decodeObjectMetadata(stored?.metadata ?? {})?.mac === undefined).toBe(kind !== 'mac');

    // The same id and size with other content: announced with its sha256, or without one (read from the source).
    const other = patternBytes(size, `${id}-other`);
    await writeFile(path, other);
    for (const extra of [{ sha256: sha256(other) }, {}, { sha256: 'a'.repeat(64) }]) {
      const rec = recording(rt);
      const err = await uploadSegment(rt, announce(id, path, extra)).catch((e: unknown) => e);
      rec.stop();
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err).toMatchObject({ what: 'sha256' });
      expect((err as Error).message).toMatch(/already holds this segment with other content .*; it is never overwritten/);
      expect(rec.commands.filter((c) => !['HeadObjectCommand', 'GetObjectCommand'].includes(c))).toEqual([]);
    }
    expect((await rt.store.head(bucket(), keyOf(id)))?.etag).toBe(stored?.etag);

    // The same content again is acknowledged, with or without the announced digest.
    await writeFile(path, first);
    for (const extra of [{ sha256: sha256(first) }, {}]) {
      await expect(uploadSegment(rt, announce(id, path, extra))).resolves.toMatchObject({ outcome: 'already-stored', sha256: sha256(first) });
    }
  });

  it('a substituted plain object without bks-sha256 is refused, not acknowledged', async () => {
    const bytes = patternBytes(1000, 'no-digest');
    const path = await source('no-digest', bytes);
    await off.store.put(bucket(), keyOf('no-digest'), Readable.from([bytes]), { metadata: { 'bks-format': 'plain', 'bks-size': '1000' }, partSize: 5 * MiB, queueSize: 1 });
    await expect(uploadSegment(off, announce('no-digest', path))).rejects.toThrow(MalformedHeaderError);
  });
});

describe('bks-mac', () => {
  it('equals an independent computation (Python: hashlib.scrypt, cryptography HKDF, hmac) of docs/FORMAT.md (format v1 and bks-mac)', async () => {
    const bytes = Buffer.from('hello, bucket-storage mac');
    const path = await source('mac-vector', bytes);
    await uploadSegment(runtime, announce('mac-vector', path, { sha256: sha256(bytes) }));
    const meta = decodeObjectMetadata((await runtime.store.head(bucket(), keyOf('mac-vector')))?.metadata ?? {});
    expect(meta?.mac).toMatch(/^[0-9a-f]{64}$/);
    const python = `
import hashlib, hmac, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
secret, header_hex, identity, digest = sys.argv[1:5]
master = hashlib.scrypt(secret.encode(), salt=b"bucket-storage/v1", n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
salt = bytes.fromhex(header_hex)[16:48]
mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"bucket-storage/v1 sha256-mac " + identity.encode()).derive(master)
print(hmac.new(mac_key, bytes.fromhex(digest), hashlib.sha256).hexdigest())
`;
    const { stdout } = await promisify(execFile)('python3', ['-c', python, SECRET, meta?.header?.toString('hex') ?? '', 'sc/mac-vector', sha256(bytes)], { encoding: 'utf8' });
    expect(stdout.trim()).toBe(meta?.mac);
    // It is no plaintext digest: nothing in the metadata equals the content's SHA-256.
    expect(Object.values((await runtime.store.head(bucket(), keyOf('mac-vector')))?.metadata ?? {})).not.toContain(sha256(bytes));
    expect((await readFile(path)).equals(bytes)).toBe(true);
  });
});
