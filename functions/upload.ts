/**
 * upload (SQS-triggered): each record is a segment announcement, parsed once by the batch processor
 * (src/upload/uploadBatch.ts), uploaded and reported on its own (src/upload/storeRecord.ts: log and metric
 * lines). The answer lists failed records by SQS messageId (batchItemFailures), so one bad record never fails
 * or delays the others; the queue's redrive policy moves a record that keeps failing to the DLQ.
 */
import { processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { functionMetrics } from '../src/core/functionMetrics.ts';
import { logger } from '../src/core/logger.ts';
import { refuseEventWithoutMessageIds, uploadBatchProcessor } from '../src/upload/uploadBatch.ts';
import { storeRecord } from '../src/upload/storeRecord.ts';

const processor = uploadBatchProcessor();

async function uploadHandler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  refuseEventWithoutMessageIds(event);
  // One record at a time: memory stays that of one upload (part size × concurrency), whatever the batch.
  return processPartialResponse(event, storeRecord, processor, { context, processInParallel: false, throwOnFullBatchFailure: false });
}

export const handler = middy(uploadHandler).use(injectLambdaContext(logger)).use(functionMetrics('upload'));
