/**
 * fetch (invoked): restores a segment, or a byte range of it, to a file:// or s3:// destination. The event is
 * parsed by Powertools' parser (a malformed one is an InvalidMessageError naming the field); a failure is thrown
 * as its typed error (Lambda's errorType). middy aborts the handler's signal DEADLINE_MARGIN_MS before the
 * deadline: the restore stops and removes what it wrote. Each restore or failure is a metric line.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import middy, { type MiddyHandlerObject } from '@middy/core';
import type { Context } from 'aws-lambda';
import { stopBeforeDeadline } from '../src/core/deadline.ts';
import { logger } from '../src/core/logger.ts';
import { fetchInvocationSchema, type FetchAnswer, type FetchInvocation } from '../src/core/messages.ts';
import { functionMetrics } from '../src/core/functionMetrics.ts';
import { invalidMessageOnParseError } from '../src/core/parseErrorMiddleware.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { restoreMetrics } from '../src/fetch/restoreMetrics.ts';

async function fetchHandler(invocation: FetchInvocation, _context: Context, { signal }: MiddyHandlerObject): Promise<FetchAnswer> {
  const answer = await fetchSegment(await getRuntime(), invocation, { signal });
  logger.info('segment restored', { ...answer });
  return answer;
}

export const handler = middy(fetchHandler, stopBeforeDeadline)
  .use([injectLambdaContext(logger), ...functionMetrics('fetch'), restoreMetrics()])
  .use(parser({ schema: fetchInvocationSchema }))
  .use(invalidMessageOnParseError(fetchInvocationSchema, 'fetch invocation'));
