/**
 * upload (SQS-triggered): each record is a segment announcement, parsed once by the batch processor
 * (src/upload/uploadBatch.ts), uploaded and reported on its own (src/upload/storeRecord.ts: log and metric
 * lines). The answer lists failed records by SQS messageId (batchItemFailures), so one bad record never fails
 * or delays the others. A record that can never succeed (malformed, refused identifier, missing source:
 * src/upload/deadLetter.ts) goes to the DLQ at once with its reason, when S3_STORAGE_SEGMENTS_DLQ_URL is set;
 * the queue's redrive policy moves a record that keeps failing for any other reason to the DLQ after
 * maxReceiveCount receives.
 */
import { processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { functionMetrics } from '../src/core/functionMetrics.ts';
import { logger } from '../src/core/logger.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { deadLetterPoison } from '../src/upload/deadLetter.ts';
import { storeRecord } from '../src/upload/storeRecord.ts';
import { failedRecords, refuseEventWithoutMessageIds, uploadBatchProcessor } from '../src/upload/uploadBatch.ts';

const processor = uploadBatchProcessor();

async function uploadHandler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  refuseEventWithoutMessageIds(event);
  // One record at a time: memory stays that of one upload (part size × concurrency), whatever the batch.
  const answer = await processPartialResponse(event, storeRecord, processor, { context, processInParallel: false, throwOnFullBatchFailure: false });
  // A failed cold start keeps every record failed: the queue's redrive applies.
  const runtime = answer.batchItemFailures.length === 0 ? undefined : await getRuntime().catch(() => undefined);
  const dlqUrl = runtime?.config.segmentsDlqUrl;
  return runtime === undefined || dlqUrl === undefined ? answer : deadLetterPoison(answer, failedRecords(processor), runtime.config, { sqs: runtime.clients.sqs, url: dlqUrl });
}

export const handler = middy(uploadHandler).use(injectLambdaContext(logger)).use(functionMetrics('upload'));
