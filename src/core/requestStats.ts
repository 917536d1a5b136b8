/**
 * What the AWS SDK's retries hide: requests sent, retries and the time spent waiting for them, and throttling
 * answers (429, 503 SlowDown, Throttling*), counted by middlewares that the client factory adds to every client
 * (`watch`). The handlers turn `take()` into metrics once an invocation (src/core/metrics.ts).
 */
import type { AbsoluteLocation, DeserializeHandlerOptions, DeserializeMiddleware, InitializeHandlerOptions, InitializeMiddleware } from '@smithy/types';

/** Counts since the last take(). */
export interface RequestCounts {
  /** Operations (one per command sent, however many attempts it took). */
  readonly operations: number;
  /** Attempts beyond the first. */
  readonly retries: number;
  /** Milliseconds the SDK waited between attempts. */
  readonly retryDelayMs: number;
  /** Attempts answered with throttling (429, 503, SlowDown, Throttling*, RequestLimitExceeded). */
  readonly throttles: number;
}

/** The part of a client the counters need: its middleware stack, whatever the client's own types. */
export interface Watchable {
  readonly middlewareStack: {
    add(middleware: InitializeMiddleware<object, object>, options: InitializeHandlerOptions & AbsoluteLocation): void;
    add(middleware: DeserializeMiddleware<object, object>, options: DeserializeHandlerOptions & AbsoluteLocation): void;
  };
}

const THROTTLING = /Throttl|SlowDown|TooManyRequests|RequestLimitExceeded/;

/** The SDK's metadata of an answer or error, when it has some. */
function metadataOf(value: unknown): { attempts?: number; totalRetryDelay?: number; httpStatusCode?: number } | undefined {
  if (typeof value !== 'object' || value === null || !('$metadata' in value)) return undefined;
  const m = value.$metadata;
  return typeof m === 'object' && m !== null ? m : undefined;
}

export function isThrottling(err: unknown): boolean {
  const status = metadataOf(err)?.httpStatusCode;
  return status === 429 || status === 503 || (err instanceof Error && THROTTLING.test(err.name));
}

export class RequestStats {
  #counts = { operations: 0, retries: 0, retryDelayMs: 0, throttles: 0 };

  /** Adds the counting middlewares to `client`. */
  watch(client: Watchable): void {
    client.middlewareStack.add(
      (next) => async (args) => {
        let outcome: unknown;
        try {
          const output = await next(args);
          outcome = output.output;
          return output;
        } catch (err) {
          outcome = err;
          throw err;
        } finally {
          const m = metadataOf(outcome);
          this.#counts.operations++;
          this.#counts.retries += Math.max(0, (m?.attempts ?? 1) - 1);
          this.#counts.retryDelayMs += m?.totalRetryDelay ?? 0;
        }
      },
      { step: 'initialize', name: 'bucketStorageRequestStats', priority: 'high' },
    );
    // Inside the retry loop: every attempt's answer passes here, also those the SDK retried away.
    client.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          if (isThrottling(err)) this.#counts.throttles++;
          throw err;
        }
      },
      { step: 'deserialize', name: 'bucketStorageThrottleStats', priority: 'high' },
    );
  }

  /** The counts since the last take(), and a fresh start. */
  take(): RequestCounts {
    const counts = this.#counts;
    this.#counts = { operations: 0, retries: 0, retryDelayMs: 0, throttles: 0 };
    return counts;
  }
}
