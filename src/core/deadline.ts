/**
 * middy's timeout, set so a function stops before Lambda's deadline and answers with its own error.
 * DEADLINE_MARGIN_MS before the deadline middy aborts the `signal` it hands the handler (third argument); the
 * handler stops, cleans up (a restore removes its partial file or aborts its multipart upload) and rejects with
 * what stopped it. Only if it has not settled CLEANUP_GRACE_MS later does middy answer with a TimeoutError,
 * still before Lambda freezes the environment. (middy's default answers at once, while the cleanup still runs.)
 */
import type middy from '@middy/core';
import { setTimeout as sleep } from 'node:timers/promises';

/** Margin kept before a Lambda deadline: the work stops and cleans up instead of being frozen mid-write. */
export const DEADLINE_MARGIN_MS = 5_000;
const CLEANUP_GRACE_MS = DEADLINE_MARGIN_MS - 1_000;

/** middy's plugin options: `middy(handler, stopBeforeDeadline)`. */
export const stopBeforeDeadline: middy.PluginObject = {
  timeoutEarlyInMillis: DEADLINE_MARGIN_MS,
  // Raced by middy against the handler, whose own rejection normally comes first. Unref'd: a CLI run that
  // ends sooner is not kept alive by it.
  timeoutEarlyResponse: () =>
    sleep(CLEANUP_GRACE_MS, undefined, { ref: false }).then(() => {
      throw new DOMException(`the handler did not stop within ${CLEANUP_GRACE_MS} ms of its deadline signal`, 'TimeoutError');
    }),
};
