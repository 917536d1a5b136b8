/**
 * upload (SQS-triggered): each record is a segment announcement; each is validated, uploaded and reported on
 * its own. The answer lists failed records by SQS messageId (batchItemFailures), so one bad record never
 * fails or delays the others; the queue's redrive policy moves a record that keeps failing to the DLQ.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { errorFields, logger } from '../src/core/logger.ts';
import { parseJsonWith, segmentAnnouncementSchema } from '../src/core/messages.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';

const processor = new BatchProcessor(EventType.SQS);

async function recordHandler(record: SQSRecord): Promise<void> {
  try {
    const announcement = parseJsonWith(segmentAnnouncementSchema, record.body, 'segment announcement');
    const result = await uploadSegment(await getRuntime(), announcement);
    logger.info('segment stored', { messageId: record.messageId, ...result });
  } catch (err) {
    logger.error('segment not stored; the record is reported failed', { messageId: record.messageId, receiveCount: record.attributes?.ApproximateReceiveCount, ...errorFields(err) });
    throw err;
  }
}

async function uploadHandler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  // One record at a time: memory stays that of one upload (part size × concurrency), whatever the batch.
  return processPartialResponse(event, recordHandler, processor, { context, processInParallel: false, throwOnFullBatchFailure: false });
}

export const handler = middy(uploadHandler);
