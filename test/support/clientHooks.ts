/**
 * Test hooks on the SDK clients a runtime built: a shorter request timeout (the production default stays in
 * src/core/clients.ts), and a counter of the attempts each command really took, read from the SDK's own
 * `$metadata.attempts` (set by its retry middleware on answers and on errors alike).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

type HookableClient = Pick<S3Client, 'config' | 'middlewareStack'>;

/**
 * Sets the socket idle timeout of the client's request handler (shared by the clients of one createClients()).
 * Throws if the handler is not the NodeHttpHandler the project builds, so a test never believes a timeout it
 * did not set.
 */
export function setRequestTimeout(client: HookableClient, ms: number): void {
  const handler = client.config.requestHandler;
  if (!(handler instanceof NodeHttpHandler)) throw new Error('setRequestTimeout: the client does not use a NodeHttpHandler');
  handler.updateHttpClientConfig('requestTimeout', ms);
}

export interface AttemptCounter {
  /** Commands that ended (answered or failed). */
  readonly commands: number;
  /** Attempts beyond the first, summed over every command: requests the SDK sent again. */
  readonly retries: number;
  /** Commands that failed after all their attempts. */
  readonly failed: number;
  stop(): void;
}

function attemptsOf(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null || !('$metadata' in value)) return undefined;
  const meta = value.$metadata;
  if (typeof meta !== 'object' || meta === null || !('attempts' in meta)) return undefined;
  return typeof meta.attempts === 'number' ? meta.attempts : undefined;
}

let counterId = 0;

/** Counts, from now until stop(), every command the client sends and the attempts each took. */
export function countAttempts(client: HookableClient): AttemptCounter {
  const name = `countAttempts-${++counterId}`;
  const state = { commands: 0, retries: 0, failed: 0 };
  const record = (attempts: number | undefined) => {
    state.commands++;
    // A command that ended without $metadata never reached the retry middleware: one attempt or none.
    if (attempts !== undefined && attempts > 1) state.retries += attempts - 1;
  };
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        const result = await next(args);
        record(attemptsOf(result.output));
        return result;
      } catch (err) {
        state.failed++;
        record(attemptsOf(err));
        throw err;
      }
    },
    { step: 'initialize', name },
  );
  return {
    get commands() {
      return state.commands;
    },
    get retries() {
      return state.retries;
    },
    get failed() {
      return state.failed;
    },
    stop: () => void client.middlewareStack.remove(name),
  };
}
