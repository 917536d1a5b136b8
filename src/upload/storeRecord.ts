/**
 * The upload function's record handler: uploads the record's announced segment, then records the outcome as a
 * metric line (bytes, seconds, MiB/s, the announcement's age: now minus the record's SQS SentTimestamp) and a
 * log line. Failures are counted where they are logged (uploadBatch.ts).
 */
import type { ParsedRecord } from '@aws-lambda-powertools/batch';
import type { SQSRecord } from 'aws-lambda';
import { logger } from '../core/logger.ts';
import type { SegmentAnnouncement } from '../core/messages.ts';
import { ageOf, recordUpload } from '../core/metrics.ts';
import { getRuntime } from '../core/runtime.ts';
import { uploadSegment } from './uploadSegment.ts';

export async function storeRecord(record: ParsedRecord<SQSRecord, SegmentAnnouncement>): Promise<void> {
  const started = performance.now();
  const result = await uploadSegment(await getRuntime(), record.body);
  const announcementAge = ageOf(record.attributes.SentTimestamp);
  recordUpload({ outcome: result.outcome, bytes: result.size, seconds: (performance.now() - started) / 1000, announcementAge });
  logger.info('segment stored', { messageId: record.messageId, ...result, announcementAgeSeconds: announcementAge });
}
