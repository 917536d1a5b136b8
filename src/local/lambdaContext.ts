import type { Context } from 'aws-lambda';
import { randomUUID } from 'node:crypto';

/**
 * A Lambda context for local runs: its deadline is `timeoutMs` from now (the 15-minute maximum by default), which
 * middy's early timeout reads through getRemainingTimeInMillis; a fresh request id, as the logger reports it.
 */
export function lambdaContext(name: string, timeoutMs = 900_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `bucket-storage-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:bucket-storage-${name}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: 'local',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
