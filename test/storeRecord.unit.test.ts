/**
 * The upload function's record handler (src/upload/storeRecord.ts) with the upload itself replaced: the metric
 * line's UploadSeconds (a clock read before and after, in seconds) and the `segment stored` log line's fields.
 * Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import type { ParsedRecord } from '@aws-lambda-powertools/batch';
import type { SQSRecord } from 'aws-lambda';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { logger } from '../src/core/logger.ts';
import type { SegmentAnnouncement } from '../src/core/messages.ts';
import { storeRecord } from '../src/upload/storeRecord.ts';
import type { UploadResult } from '../src/upload/uploadSegment.ts';
import { capturedOutput } from './support/capturedOutput.ts';

const RESULT: UploadResult = { outcome: 'uploaded', bucket: 'b', key: 'k', size: 1_048_576, storedSize: 1_049_000, sha256: 'ab'.repeat(32), verified: false, cancelledDeletions: 0 };

vi.mock('../src/core/runtime.ts', () => ({ getRuntime: async () => ({}) }));
vi.mock('../src/upload/uploadSegment.ts', () => ({ uploadSegment: async () => RESULT }));

// The log line is asserted: whatever LOG_LEVEL the run has, this file logs at INFO (a fresh module per file).
beforeAll(() => logger.setLogLevel('INFO'));
afterEach(() => {
  vi.restoreAllMocks();
});

const record: ParsedRecord<SQSRecord, SegmentAnnouncement> = {
  messageId: 'msg-7',
  receiptHandle: 'rh',
  body: { version: 1, dataspace: 'ds', segmentId: 'seg-7', source: 'file:///src/seg-7' },
  attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()), SenderId: 's', ApproximateFirstReceiveTimestamp: '1' },
  messageAttributes: {},
  md5OfBody: '',
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:segments',
  awsRegion: 'eu-west-1',
};

describe('storeRecord', () => {
  it('records the upload time in seconds and logs the stored segment with the record and result fields', async () => {
    // The handler reads the clock before and after the upload: 1000 ms, then 1500 ms.
    const clock = [1000, 1500];
    vi.spyOn(performance, 'now').mockImplementation(() => clock.shift() ?? 1500);
    const lines = (await capturedOutput(() => storeRecord(record)))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const emf = lines.find((l) => '_aws' in l);
    expect(emf).toMatchObject({ UploadSeconds: 0.5, SegmentBytes: 1_048_576, UploadThroughput: 2 });
    const stored = lines.filter((l) => l.message === 'segment stored');
    expect(stored).toEqual([
      expect.objectContaining({ level: 'INFO', messageId: 'msg-7', outcome: 'uploaded', bucket: 'b', key: 'k', size: 1_048_576, storedSize: 1_049_000, verified: false, cancelledDeletions: 0 }),
    ]);
    expect(stored[0]?.announcementAgeSeconds).toEqual(expect.any(Number));
  });
});
