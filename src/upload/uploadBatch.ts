/**
 * The upload function's batch processing (Powertools): each SQS record's body is parsed once as a segment
 * announcement by the processor's parser hook, and every failed record, malformed or not stored, is logged
 * with its messageId as it fails, and counted (metrics by error code).
 */
import { BatchProcessor, EventType } from '@aws-lambda-powertools/batch';
import type { EventSourceDataClassTypes, FailureResponse } from '@aws-lambda-powertools/batch/types';
import { errorFields, logger } from '../core/logger.ts';
import { parseWith, segmentAnnouncementSchema, sqsEventSchema } from '../core/messages.ts';
import { recordUploadFailure } from '../core/metrics.ts';
import { sqsMessageParsing } from '../core/sqsRecordParser.ts';

class UploadBatchProcessor extends BatchProcessor {
  override failureHandler(record: EventSourceDataClassTypes, error: Error): FailureResponse {
    const sqs = 'messageId' in record ? { messageId: record.messageId, receiveCount: record.attributes.ApproximateReceiveCount } : {};
    logger.error('segment not stored; the record is reported failed', { ...sqs, ...errorFields(error) });
    recordUploadFailure(error);
    return super.failureHandler(record, error);
  }
}

/** A batch processor for the segments queue's records. */
export function uploadBatchProcessor(): BatchProcessor {
  return new UploadBatchProcessor(EventType.SQS, { ...sqsMessageParsing(segmentAnnouncementSchema, 'segment announcement'), logger });
}

/**
 * Every record must carry the messageId its failure is reported by (Lambda fails the whole batch on a missing
 * one): an event that is not a list of records with ids is refused whole, with an InvalidMessageError naming
 * the record, before any record is handled.
 */
export function refuseEventWithoutMessageIds(event: unknown): void {
  parseWith(sqsEventSchema, event, 'SQS event');
}
