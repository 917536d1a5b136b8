/**
 * Small parts of the upload function, in-process: where a source is read from (openSource with a fake role
 * store), the read-back check (verifyReadBack with a scripted HEAD), and the batch processor's failure line and
 * event check (uploadBatch.ts). Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import type { SQSRecord } from 'aws-lambda';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, InvalidMessageError, PathOutsideRootError } from '../src/core/errors.ts';
import { logger } from '../src/core/logger.ts';
import type { BucketRef, ObjectInfo } from '../src/core/s3Store.ts';
import { verifyReadBack } from '../src/upload/readBack.ts';
import { openSource, type SourceRuntime } from '../src/upload/source.ts';
import { refuseEventWithoutMessageIds, uploadBatchProcessor } from '../src/upload/uploadBatch.ts';
import { capturedOutput } from './support/capturedOutput.ts';

// The failure line is asserted: whatever LOG_LEVEL the run has, this file logs at INFO (a fresh module per file).
beforeAll(() => logger.setLogLevel('INFO'));

let root = '';
let outside = '';
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'uploadparts-root-'));
  outside = mkdtempSync(join(tmpdir(), 'uploadparts-out-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

/** A role store whose HEAD finds every object (size 5) and records the bucket refs it was asked with. */
function roleStore() {
  const heads: BucketRef[] = [];
  const store: SourceRuntime['roleStore'] = {
    head: async (ref) => {
      heads.push(ref);
      const info: ObjectInfo = { size: 5, etag: '"e"', metadata: {}, checksumCrc32: undefined, checksumType: undefined, serverSideEncryption: undefined, lastModified: undefined };
      return info;
    },
    get: async () => Readable.from([Buffer.from('hello')]),
  };
  return { store, heads };
}

describe('openSource', () => {
  const runtime = (store: SourceRuntime['roleStore']): SourceRuntime => ({
    config: { region: 'eu-west-1', sourceRoot: root, staging: { bucket: 'staging-bucket', region: 'us-east-2', deleteAfterUpload: false } },
    roleStore: store,
  });

  it('refuses a location it cannot parse, naming the field "source"', async () => {
    const err = await openSource(runtime(roleStore().store), 'ftp://host/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidMessageError);
    expect(err).toMatchObject({ field: 'source' });
    expect((err as Error).message).toMatch(/^source /);
  });

  it('refuses a file outside the root, naming S3_STORAGE_SOURCE_ROOT', async () => {
    const path = join(outside, 'seg');
    writeFileSync(path, 'hello');
    const err = await openSource(runtime(roleStore().store), `file://${path}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PathOutsideRootError);
    expect(err).toMatchObject({ rootVariable: 'S3_STORAGE_SOURCE_ROOT' });
    expect((err as Error).message).toContain(`resolves outside S3_STORAGE_SOURCE_ROOT (`);
  });

  it('reads an object of the staging bucket in its region, and marks it staged; another bucket in the current region', async () => {
    const { store, heads } = roleStore();
    const staged = await openSource(runtime(store), 's3://staging-bucket/seg/1');
    expect(staged.staged).toEqual({ ref: { bucket: 'staging-bucket', region: 'us-east-2' }, key: 'seg/1' });
    const other = await openSource(runtime(store), 's3://other-bucket/seg/1');
    expect(other.staged).toBeUndefined();
    expect(heads).toEqual([
      { bucket: 'staging-bucket', region: 'us-east-2' },
      { bucket: 'other-bucket', region: 'eu-west-1' },
    ]);
  });
});

describe('verifyReadBack', () => {
  it('an object that is gone when read back is a size mismatch with "no object"', async () => {
    const err = await verifyReadBack({ head: async () => undefined }, { bucket: 'b', region: 'eu-west-1' }, 'k', { storedSize: 12, checksumCrc32: undefined }, 'seg 1').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err).toMatchObject({ what: 'size', expected: '12', actual: 'no object' });
    expect((err as Error).message).toBe('seg 1: read back of s3://b/k: size mismatch, expected 12, got no object');
  });
});

describe('uploadBatch', () => {
  it('logs each failed record with its messageId, receive count and error', async () => {
    const processor = uploadBatchProcessor();
    const record: SQSRecord = {
      messageId: 'msg-1',
      receiptHandle: 'rh',
      body: '{"not":"an announcement"}',
      attributes: { ApproximateReceiveCount: '2', SentTimestamp: '1', SenderId: 's', ApproximateFirstReceiveTimestamp: '1' },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:segments',
      awsRegion: 'eu-west-1',
    };
    processor.register([record], async () => undefined);
    let failure: unknown;
    const out = await capturedOutput(() => processor.process().catch((e: unknown) => (failure = e)));
    expect(failure).toMatchObject({ name: 'FullBatchFailureError' });
    const lines = out
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes('"level"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message: 'segment not stored; the record is reported failed',
        messageId: 'msg-1',
        receiveCount: '2',
        errorName: 'InvalidMessageError',
        errorCode: 'INVALID_MESSAGE',
      }),
    ]);
  });

  it('refuses an event whose record has no messageId, naming the SQS event', () => {
    let err: unknown;
    try {
      refuseEventWithoutMessageIds({ Records: [{ body: '{}' }] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidMessageError);
    expect((err as Error).message).toMatch(/^SQS event/);
  });
});
