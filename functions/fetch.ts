/**
 * fetch (invoked): restores a segment, or a byte range of it, to a file:// or s3:// destination.
 * Event: the fetch invocation of DESIGN.md; answer: the fetch answer. A failure is thrown as its typed error,
 * so Lambda's invoke error carries its class (errorType, e.g. SegmentNotFoundError) and message.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { fetchInvocationSchema, parseWith, type FetchAnswer } from '../src/core/messages.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { deadlineSignal, fetchSegment } from '../src/fetch/fetchSegment.ts';

async function fetchHandler(event: unknown, context: Context): Promise<FetchAnswer> {
  const invocation = parseWith(fetchInvocationSchema, event, 'fetch invocation');
  return fetchSegment(await getRuntime(), invocation, { signal: deadlineSignal(context) });
}

export const handler = middy(fetchHandler);
