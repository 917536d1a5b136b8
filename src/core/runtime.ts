/**
 * What a function needs at cold start, built once per process from the environment: the validated config,
 * the AWS clients, the S3 access layer and the key ring. Handlers call `getRuntime()`; tests and the CLI
 * build their own with `createRuntime(env)` so nothing leaks between them.
 */
import { createClients, type Clients } from './clients.ts';
import { loadConfig, type Config } from './config.ts';
import { loadKeyRing } from './encryptionKeys.ts';
import type { KeyRing } from './keyRing.ts';
import { S3Store } from './s3Store.ts';
import { SingleBucketRegistry, type BucketRegistry } from './bucketRegistry.ts';

export interface Runtime {
  readonly config: Config;
  readonly clients: Clients;
  readonly store: S3Store;
  readonly keyRing: KeyRing;
}

export async function createRuntime(env: Readonly<Record<string, string | undefined>> = process.env): Promise<Runtime> {
  const config = loadConfig(env);
  const clients = createClients(config);
  const store = new S3Store((region) => clients.s3(region));
  const keyRing = await loadKeyRing(config, () => clients.kms());
  return { config, clients, store, keyRing };
}

let runtime: Promise<Runtime> | undefined;

/** The process's runtime, created on first use (cold start). A failed cold start is retried next call. */
export function getRuntime(): Promise<Runtime> {
  if (runtime === undefined) {
    runtime = createRuntime();
    runtime.catch(() => {
      runtime = undefined;
    });
  }
  return runtime;
}

/** What uploads and restores work with: a runtime's config, store and keys, and the buckets to search. */
export interface SegmentContext {
  readonly config: Config;
  readonly store: S3Store;
  readonly keyRing: KeyRing;
  readonly registry: BucketRegistry;
}

/** The segment context of a runtime; without `registry`, the current bucket is the only one. */
export function segmentContext(runtime: Runtime, registry?: BucketRegistry): SegmentContext {
  return {
    config: runtime.config,
    store: runtime.store,
    keyRing: runtime.keyRing,
    registry: registry ?? new SingleBucketRegistry({ bucket: runtime.config.bucket, region: runtime.config.region }),
  };
}
