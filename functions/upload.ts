/**
 * upload (SQS-triggered): each record is a segment announcement; each is parsed once by the batch processor's
 * parser (src/core/sqsRecordParser.ts), uploaded and reported on its own. The answer lists failed records by
 * SQS messageId (batchItemFailures), so one bad record, malformed or not stored, never fails or delays the
 * others; the queue's redrive policy moves a record that keeps failing to the DLQ.
 */
import { BatchProcessor, EventType, processPartialResponse, type ParsedRecord } from '@aws-lambda-powertools/batch';
import type { EventSourceDataClassTypes, FailureResponse } from '@aws-lambda-powertools/batch/types';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { errorFields, logger } from '../src/core/logger.ts';
import { segmentAnnouncementSchema, type SegmentAnnouncement } from '../src/core/messages.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { sqsMessageParsing } from '../src/core/sqsRecordParser.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';

/** Logs each failed record, malformed or not stored, with its messageId as it fails. */
class UploadBatchProcessor extends BatchProcessor {
  override failureHandler(record: EventSourceDataClassTypes, error: Error): FailureResponse {
    const sqs = 'messageId' in record ? { messageId: record.messageId, receiveCount: record.attributes.ApproximateReceiveCount } : {};
    logger.error('segment not stored; the record is reported failed', { ...sqs, ...errorFields(error) });
    return super.failureHandler(record, error);
  }
}

const processor = new UploadBatchProcessor(EventType.SQS, { ...sqsMessageParsing(segmentAnnouncementSchema, 'segment announcement'), logger });

async function recordHandler(record: ParsedRecord<SQSRecord, SegmentAnnouncement>): Promise<void> {
  const result = await uploadSegment(await getRuntime(), record.body);
  logger.info('segment stored', { messageId: record.messageId, ...result });
}

async function uploadHandler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  // One record at a time: memory stays that of one upload (part size × concurrency), whatever the batch.
  return processPartialResponse(event, recordHandler, processor, { context, processInParallel: false, throwOnFullBatchFailure: false });
}

export const handler = middy(uploadHandler).use(injectLambdaContext(logger));
