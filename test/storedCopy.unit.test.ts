/**
 * "Already stored?" (src/upload/storedCopy.ts) and the staged copy's deletion (src/upload/stagedCopy.ts) against
 * fake stores and registries: which bucket's copy is found, the wording of each refusal (naming the object,
 * the purpose of a plain-object check, the MAC that differs), and which staged copies are deleted, kept or
 * logged. Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BucketRegistry } from '../src/core/bucketRegistry.ts';
import { IntegrityError, MalformedHeaderError, PlainObjectRefusedError } from '../src/core/errors.ts';
import { encodeHeader } from '../src/core/format/header.ts';
import type { KeyEntry, KeyRing } from '../src/core/keyRing.ts';
import { logger } from '../src/core/logger.ts';
import type { BucketRef, ObjectInfo } from '../src/core/s3Store.ts';
import { deleteStagedCopy } from '../src/upload/stagedCopy.ts';
import { checkStoredContent, checkStoredCopy, findStoredCopy, storedCopyIn, type ContentRuntime, type StoredCopy } from '../src/upload/storedCopy.ts';
import { capturedOutput } from './support/capturedOutput.ts';

// Log lines are asserted: whatever LOG_LEVEL the run has, this file logs at INFO (a fresh module per file).
beforeAll(() => logger.setLogLevel('INFO'));
afterEach(() => {
  vi.restoreAllMocks();
});

const A: BucketRef = { bucket: 'bucket-a', region: 'eu-west-1' };
const B: BucketRef = { bucket: 'bucket-b', region: 'eu-west-1' };
const HEX64 = 'ab'.repeat(32);
const OTHER64 = 'cd'.repeat(32);
const KEY: KeyEntry = { keyId: Buffer.alloc(8, 1), keyIdHex: '0101010101010101', master: Buffer.alloc(32, 2) };
const IDENTITY = { dataspace: 'ds', segmentId: 'seg-1' };

const info = (size: number, metadata: Record<string, string>): ObjectInfo => ({
  size,
  etag: '"e"',
  metadata,
  checksumCrc32: undefined,
  checksumType: undefined,
  serverSideEncryption: undefined,
  lastModified: new Date('2026-01-01T00:00:00Z'),
});

const plainCopy = (size = 12, sha256 = HEX64): StoredCopy => ({
  ref: B,
  key: 'seg/key',
  info: info(size, {}),
  meta: { format: 'plain', plaintextSize: 12, sha256 },
});

/** JSON log lines written while `run` ran. */
async function logLines(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  return (await capturedOutput(run))
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"level"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('findStoredCopy / storedCopyIn', () => {
  it('looks in every bucket of the search order and returns the first copy found', async () => {
    const asked: string[] = [];
    const registry: BucketRegistry = { current: A, searchOrder: async () => [A, B], all: async () => [A, B] };
    const store = {
      head: async (ref: BucketRef) => {
        asked.push(ref.bucket);
        return ref.bucket === B.bucket ? info(12, { 'bks-format': 'plain', 'bks-size': '12', 'bks-sha256': HEX64 }) : undefined;
      },
    };
    const found = await findStoredCopy({ registry, store }, 'seg/key');
    expect(found).toMatchObject({ ref: B, key: 'seg/key', meta: { format: 'plain', plaintextSize: 12, sha256: HEX64 } });
    expect(asked).toEqual(['bucket-a', 'bucket-b']);
  });

  it('names the object in a metadata refusal', async () => {
    const store = { head: async () => info(12, { 'bks-format': 'v2', 'bks-size': '12' }) };
    const err = await storedCopyIn(store, B, 'seg/key').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MalformedHeaderError);
    expect((err as Error).message).toBe('s3://bucket-b/seg/key: metadata is not valid bucket-storage metadata (bks-format)');
  });
});

describe('checkStoredCopy', () => {
  it('a damaged copy (size disagreeing with its metadata) is refused naming the object', () => {
    let err: unknown;
    try {
      checkStoredCopy(plainCopy(13), 12, 'seg 1');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(
      'seg 1: s3://bucket-b/seg/key is damaged (its size disagrees with its metadata); it is never overwritten: check it with verify, then remove it by hand: size mismatch, expected 12, got 13',
    );
  });
});

describe('checkStoredContent', () => {
  const runtime = (mode: 'on' | 'off'): ContentRuntime => ({
    config: { encryption: mode === 'off' ? { mode: 'off' } : ({ mode: 'on' } as ContentRuntime['config']['encryption']), plainObjectsBefore: undefined },
    // Only find() is used, for the key id of a stored header.
    keyRing: { find: () => KEY } as unknown as KeyRing,
    store: { get: async () => Promise.reject(new Error('no GET expected')) },
  });

  it('a plain copy with another digest is refused naming the object', async () => {
    const err = await checkStoredContent(runtime('off'), plainCopy(12, OTHER64), IDENTITY, HEX64, 'seg 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(
      `seg 1: s3://bucket-b/seg/key already holds this segment with other content (the announced sha256, or the source, differs from what is stored); it is never overwritten: sha256 mismatch, expected ${HEX64}, got ${OTHER64}`,
    );
  });

  it('a plain copy while encryption is on is refused for the purpose "already stored"', async () => {
    const err = await checkStoredContent(runtime('on'), plainCopy(), IDENTITY, HEX64, 'seg 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlainObjectRefusedError);
    expect((err as Error).message).toMatch(/^s3:\/\/bucket-b\/seg\/key is a plain \(unencrypted\) object but encryption is on/);
  });

  it('a plain copy read while encryption is on (written before it) is logged with the purpose "already stored"', async () => {
    const rt = runtime('on');
    const before: ContentRuntime = { ...rt, config: { ...rt.config, plainObjectsBefore: new Date('2027-01-01T00:00:00Z') } };
    // The copy's digest differs, so the check stops before any GET, after the plain-object check logged.
    const lines = await logLines(() => checkStoredContent(before, plainCopy(12, OTHER64), IDENTITY, HEX64, 'seg 1').catch(() => undefined));
    expect(lines).toEqual([expect.objectContaining({ level: 'WARN', message: 'plain object read while encryption is on', purpose: 'already stored', bucket: 'bucket-b', key: 'seg/key' })]);
  });

  it('a v1 copy whose bks-mac differs is refused with "another digest (bks-mac differs)"', async () => {
    const header = encodeHeader(16, KEY.keyId, Buffer.alloc(32, 3));
    const copy: StoredCopy = { ref: B, key: 'seg/key', info: info(100, {}), meta: { format: 'v1', plaintextSize: 12, header: header.raw, mac: OTHER64 } };
    const err = await checkStoredContent(runtime('on'), copy, IDENTITY, HEX64, 'seg 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'sha256', expected: HEX64, actual: 'another digest (bks-mac differs)' });
  });
});

describe('deleteStagedCopy', () => {
  const staged = { ref: { bucket: 'staging', region: 'us-east-2' }, key: 'in/seg-1' };

  const runtime = (registered: readonly BucketRef[], deleteObject: () => Promise<void>) => {
    const deleted: string[] = [];
    return {
      deleted,
      rt: {
        registry: { all: async () => registered },
        roleStore: {
          deleteObject: async (ref: BucketRef, key: string) => {
            deleted.push(`${ref.bucket}/${key}`);
            await deleteObject();
          },
        },
      },
    };
  };

  it('deletes the staged copy when the staging bucket is not a registered data bucket', async () => {
    const { rt, deleted } = runtime([A, B], async () => undefined);
    const lines = await logLines(async () => expect(await deleteStagedCopy(rt, staged, 'seg 1')).toBe('deleted'));
    expect(deleted).toEqual(['staging/in/seg-1']);
    expect(lines).toEqual([]);
  });

  it('keeps it, and says so, when the staging bucket is also a registered data bucket', async () => {
    const { rt, deleted } = runtime([A, { bucket: 'staging', region: 'us-east-2' }], async () => undefined);
    const lines = await logLines(async () => expect(await deleteStagedCopy(rt, staged, 'seg 1')).toBe('kept'));
    expect(deleted).toEqual([]);
    expect(lines).toEqual([expect.objectContaining({ level: 'ERROR', message: 'staged copy kept: the staging bucket is also a registered data bucket', segment: 'seg 1', staged: 's3://staging/in/seg-1' })]);
  });

  it('logs a failed delete and answers delete-failed', async () => {
    const { rt } = runtime([A], async () => Promise.reject(new Error('AccessDenied (marked)')));
    const lines = await logLines(async () => expect(await deleteStagedCopy(rt, staged, 'seg 1')).toBe('delete-failed'));
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'WARN',
        message: 'segment stored, but its staged copy could not be deleted; the staging lifecycle rule will expire it',
        segment: 'seg 1',
        staged: 's3://staging/in/seg-1',
        errorMessage: 'AccessDenied (marked)',
      }),
    ]);
  });
});
