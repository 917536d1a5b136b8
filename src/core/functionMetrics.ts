/**
 * The metrics middlewares of a function: Powertools' logMetrics (flushes the EMF lines at the end of each
 * invocation, with a ColdStart metric) and, before it flushes, the invocation's SDK request counts.
 *   middy(handler).use(injectLambdaContext(logger)).use(functionMetrics('upload'))
 */
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type middy from '@middy/core';
import { metrics, requestMetrics, type FunctionName } from './metrics.ts';
import { currentRuntime } from './runtime.ts';

export function functionMetrics(fn: FunctionName): middy.MiddlewareObj[] {
  // middy runs `after` hooks in reverse order: the request counts are added before logMetrics flushes.
  return [logMetrics(metrics, { captureColdStartMetric: true }), requestMetrics(fn, () => currentRuntime()?.requestStats.take())];
}
