/**
 * The staging hand-over on moto_server: ingestion nodes put a segment at s3://<staging bucket>/… (here in
 * eu-west-1, the data bucket in us-east-1) and announce that URL. The upload reads it in the staging bucket's own
 * region (S3_STORAGE_STAGING_REGION) and, with S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD, deletes the staged copy
 * only once the stored copy is verified: after the read-back of a new upload, or once an already-stored copy
 * was found intact — never before, never when the upload failed, never from another bucket.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListedBucketRegistry } from '../src/core/bucketRegistry.ts';
import { IntegrityError, StorageError } from '../src/core/errors.ts';
import type { SegmentAnnouncement } from '../src/core/messages.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import type { S3Store } from '../src/core/s3Store.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { uploadSegment, type UploadRuntime } from '../src/upload/uploadSegment.ts';
import { RequestRecorder } from './support/iamRequests.ts';
import { motoAdmin, type MotoAdmin } from './support/motoAdmin.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';
import { patternBytes, patternSha256 } from './support/sourceData.ts';

const DATA_REGION = 'us-east-1';
const STAGING_REGION = 'eu-west-1';
const STAGING = { bucket: 'staging-eu', region: STAGING_REGION };
const MiB = 1024 * 1024;

let moto: MotoServer;
let admin: MotoAdmin;
let out: string;
let env: Record<string, string>;
const recorder = new RequestRecorder();

function runtime(extra: Record<string, string> = {}, as = 'upload'): Promise<Runtime> {
  return createRuntime({ ...env, ...extra }, { clients: { instrument: recorder.as(as, 'staging') } });
}
const withDelete = { S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: 'true' };

async function stage(key: string, size: number): Promise<string> {
  await admin.put(STAGING.bucket, key, patternBytes(size, key), STAGING_REGION);
  return `s3://${STAGING.bucket}/${key}`;
}
async function staged(key: string): Promise<boolean> {
  const rt = await runtime({}, 'check');
  return (await rt.roleStore.head(STAGING, key)) !== undefined;
}
const announce = (segmentId: string, source: string, extra: Partial<SegmentAnnouncement> = {}): SegmentAnnouncement => ({ version: 1, dataspace: 'stg', segmentId, source, ...extra });

beforeAll(async () => {
  moto = await startMoto();
  admin = motoAdmin(moto.endpoint, DATA_REGION);
  await admin.createBucket('data-us');
  await admin.createBucket('other-us');
  await admin.createBucket(STAGING.bucket, STAGING_REGION);
  out = await mkdtemp(join(tmpdir(), 'bks-staging-'));
  env = {
    AWS_REGION: DATA_REGION,
    S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_BUCKET: 'data-us',
    S3_STORAGE_REGION: DATA_REGION,
    S3_STORAGE_ENCRYPTION_KEY: 'staging-test-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    S3_STORAGE_STAGING_BUCKET: STAGING.bucket,
    S3_STORAGE_STAGING_REGION: STAGING_REGION,
    S3_STORAGE_RESTORE_ROOT: out,
    S3_STORAGE_PART_SIZE_MIB: '5',
    LOG_LEVEL: 'SILENT',
  };
});
afterAll(async () => {
  moto?.stop();
  if (out) await rm(out, { recursive: true, force: true });
});

describe('a staged segment in another region than the data bucket', () => {
  it('is read in the staging bucket\'s region, stored in the data bucket, and restores byte-exact; kept without delete-after-upload', async () => {
    const rt = await runtime();
    const size = 11 * MiB + 7;
    const source = await stage('in/seg-1', size);
    const result = await uploadSegment(rt, announce('seg-1', source, { sha256: await patternSha256(size, 'in/seg-1') }));
    expect(result).toMatchObject({ outcome: 'uploaded', bucket: 'data-us', size });
    expect(result.stagedCopy).toBeUndefined();
    // Every request to the staging bucket went to, and was signed for, eu-west-1; the data bucket's for us-east-1.
    const toStaging = recorder.requests.filter((r) => r.bucket === STAGING.bucket);
    expect(toStaging.map((r) => r.operation)).toEqual(['HeadObject', 'GetObject']);
    expect(new Set(toStaging.map((r) => r.signedRegion))).toEqual(new Set([STAGING_REGION]));
    expect(new Set(recorder.requests.filter((r) => r.bucket === 'data-us').map((r) => r.signedRegion))).toEqual(new Set([DATA_REGION]));
    await fetchSegment(rt, { dataspace: 'stg', segmentId: 'seg-1', destination: `file://${join(out, 'seg-1')}` });
    expect((await readFile(join(out, 'seg-1'))).equals(patternBytes(size, 'in/seg-1'))).toBe(true);
    expect(await staged('in/seg-1')).toBe(true);
  });
});

describe('S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD', () => {
  it('deletes the staged copy only after the stored copy was read back', async () => {
    const rt = await runtime(withDelete);
    const source = await stage('in/seg-2', 6 * MiB);
    const before = recorder.requests.length;
    const result = await uploadSegment(rt, announce('seg-2', source));
    expect(result).toMatchObject({ outcome: 'uploaded', verified: true, stagedCopy: 'deleted' });
    expect(await staged('in/seg-2')).toBe(false);
    // The order on the wire: the upload completes, the stored object is read back, then the staged copy goes.
    const sequence = recorder.requests.slice(before).map((r) => `${r.operation} ${r.bucket}`);
    const complete = sequence.indexOf('CompleteMultipartUpload data-us');
    const readBack = sequence.lastIndexOf('HeadObject data-us');
    const del = sequence.indexOf(`DeleteObject ${STAGING.bucket}`);
    expect(complete).toBeGreaterThan(-1);
    expect(readBack).toBeGreaterThan(complete);
    expect(del).toBeGreaterThan(readBack);
    expect(sequence.filter((s) => s.startsWith('DeleteObject'))).toEqual([`DeleteObject ${STAGING.bucket}`]);
  });

  it('keeps the staged copy when the upload fails (announced digest wrong; read-back mismatch)', async () => {
    const rt = await runtime(withDelete);
    const source = await stage('in/seg-3', 7 * MiB);
    await expect(uploadSegment(rt, announce('seg-3', source, { sha256: 'b'.repeat(64) }))).rejects.toBeInstanceOf(IntegrityError);
    expect(await staged('in/seg-3')).toBe(true);
    // The object is written but its read-back disagrees: not verified, so the staged copy stays.
    const lying: UploadRuntime = {
      ...rt,
      store: Object.assign(Object.create(rt.store) as S3Store, {
        head: async (...args: Parameters<S3Store['head']>) => {
          const info = await rt.store.head(...args);
          return info && { ...info, size: info.size + 1 };
        },
      }),
    };
    const small = await stage('in/seg-4', 1000);
    await expect(uploadSegment(lying, announce('seg-4', small))).rejects.toBeInstanceOf(IntegrityError);
    expect(await staged('in/seg-4')).toBe(true);
    expect(recorder.requests.some((r) => r.operation === 'DeleteObject' && ['in/seg-3', 'in/seg-4'].includes(r.key ?? ''))).toBe(false);
  });

  it('an already-stored segment\'s staged copy is deleted once the stored copy is found intact', async () => {
    const rt = await runtime(withDelete);
    const first = await stage('in/seg-5', 2000);
    await uploadSegment(await runtime(), announce('seg-5', first));
    expect(await staged('in/seg-5')).toBe(true);
    // The redelivery (say, after a crash between the upload and the delete) finds the intact copy.
    expect(await uploadSegment(rt, announce('seg-5', first))).toMatchObject({ outcome: 'already-stored', stagedCopy: 'deleted' });
    expect(await staged('in/seg-5')).toBe(false);
  });

  it('a failed delete does not fail the stored segment; sources outside the staging bucket are never deleted', async () => {
    const rt = await runtime(withDelete);
    const source = await stage('in/seg-6', 3000);
    const denied: UploadRuntime = {
      ...rt,
      roleStore: Object.assign(Object.create(rt.roleStore) as S3Store, {
        deleteObject: async () => {
          throw new StorageError('DeleteObject', STAGING.bucket, 'in/seg-6', 'DeleteObject failed: AccessDenied 403', { retryable: false, httpStatus: 403 });
        },
      }),
    };
    expect(await uploadSegment(denied, announce('seg-6', source))).toMatchObject({ outcome: 'uploaded', stagedCopy: 'delete-failed' });
    expect(await staged('in/seg-6')).toBe(true);
    await admin.put('other-us', 'in/seg-7', patternBytes(500, 'seg-7'));
    const other = await uploadSegment(rt, announce('seg-7', 's3://other-us/in/seg-7'));
    expect(other.stagedCopy).toBeUndefined();
    expect((await rt.roleStore.head({ bucket: 'other-us', region: DATA_REGION }, 'in/seg-7'))?.size).toBe(500);
  });

  it('a staging bucket that is also a registered data bucket is never deleted from', async () => {
    const rt = await runtime(withDelete);
    const source = await stage('in/seg-8', 800);
    const registry = new ListedBucketRegistry(rt.registry.current, [STAGING, rt.registry.current]);
    expect(await uploadSegment({ ...rt, registry }, announce('seg-8', source))).toMatchObject({ stagedCopy: 'kept' });
    expect(await staged('in/seg-8')).toBe(true);
  });
});
