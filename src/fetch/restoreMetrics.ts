/**
 * The fetch function's metrics middleware: times each invocation and records the restore (bytes written,
 * seconds, whole or range) or its failure by error class (src/core/metrics.ts). Placed before the parser, so a
 * malformed invocation counts as a failure (InvalidMessageError) too.
 */
import type middy from '@middy/core';
import type { FetchAnswer } from '../core/messages.ts';
import { recordRestore, recordRestoreFailure } from '../core/metrics.ts';

function hasRange(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'range' in event && event.range !== undefined;
}

export function restoreMetrics(now: () => number = () => performance.now()): middy.MiddlewareObj<unknown, FetchAnswer> {
  // Per invocation (middy's request object), so overlapping local invocations keep their own times.
  const started = new WeakMap<object, number>();
  const seconds = (request: object) => (now() - (started.get(request) ?? now())) / 1000;
  return {
    before: (request) => {
      started.set(request, now());
    },
    after: (request) => {
      if (request.response !== null) recordRestore({ read: hasRange(request.event) ? 'range' : 'whole', bytes: request.response.bytesWritten, seconds: seconds(request) });
    },
    onError: (request) => {
      recordRestoreFailure(request.error, seconds(request));
    },
  };
}
