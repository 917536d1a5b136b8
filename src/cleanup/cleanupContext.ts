/** The cleanup context of a runtime: its store, its SQS client, and the registry of every bucket ever used. */
import { loadBucketRegistry } from '../core/bucketRegistry.ts';
import type { Runtime } from '../core/runtime.ts';
import type { CleanupContext } from './runCleanup.ts';

export async function cleanupContext(runtime: Runtime): Promise<CleanupContext> {
  return { config: runtime.config, store: runtime.store, sqs: runtime.clients.sqs, registry: await loadBucketRegistry(runtime) };
}
