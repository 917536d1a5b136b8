/**
 * What a function needs at cold start, built once per process from the environment: the validated config,
 * the AWS clients, the S3 access layer, the key ring and the registry of buckets. Handlers call `getRuntime()`;
 * the CLI, the demo, the benches and tests build their own with `createRuntime(env)` so nothing leaks between
 * them. Because the registry is part of the runtime, no code path can search only the current bucket of a
 * multi-bucket history by forgetting to load it.
 */
import { openBucketRegistry, type BucketRegistry, type OpenRegistryOptions } from './bucketRegistry.ts';
import { createClients, type ClientOptions, type Clients } from './clients.ts';
import { loadConfig, type Config } from './config.ts';
import { openDeletionMarks, PendingDeletionsIndex, type DeletionMarks } from './deletionMarks/index.ts';
import { loadKeyRing } from './encryptionKeys.ts';
import type { KeyRing } from './keyRing.ts';
import { applyLogFormat, logger } from './logger.ts';
import { findOtherRegistries, reportOtherPrefixes } from './otherPrefixes.ts';
import { RequestStats } from './requestStats.ts';
import { S3Store } from './s3Store.ts';

export interface Runtime {
  readonly config: Config;
  readonly clients: Clients;
  /** The data buckets (current and registered): static keys when set, else the role. */
  readonly store: S3Store;
  /** The deployment's own buckets — state (registry), staging, s3:// restore destinations — always the role. */
  readonly roleStore: S3Store;
  readonly keyRing: KeyRing;
  /** Every bucket ever used (with S3_STORAGE_STATE_BUCKET), or the current bucket alone (without it). */
  readonly registry: BucketRegistry;
  /** Requests, retries and throttles of every client, for the metrics of an invocation. */
  readonly requestStats: RequestStats;
  /** Pending deletions, recorded as marks in the state bucket (or the current bucket without one). */
  readonly deletions: DeletionMarks;
  /** This process's view of the marks, for the upload path (listing reused for a few seconds). */
  readonly pendingDeletions: PendingDeletionsIndex;
}

export interface RuntimeOptions {
  /** Options of the registry's cold-start read (tests: clock, back-off). */
  readonly registry?: OpenRegistryOptions;
  /** Options of the client factory (tests: the permission harness instruments every client). */
  readonly clients?: ClientOptions;
}

export async function createRuntime(env: Readonly<Record<string, string | undefined>> = process.env, options: RuntimeOptions = {}): Promise<Runtime> {
  const config = loadConfig(env);
  if (config.logLevel !== undefined) logger.setLogLevel(config.logLevel);
  applyLogFormat(config.logFormat);
  for (const notice of config.notices) logger.warn(notice);
  if (config.proxy !== undefined) logger.debug('AWS requests go through an HTTP proxy', { proxy: config.proxy.description, s3: config.proxy.forS3, noProxy: config.proxy.noProxy.join(',') });
  const requestStats = new RequestStats();
  const clients = createClients(config, {
    instrument: (client) => {
      requestStats.watch(client);
      options.clients?.instrument?.(client);
    },
  });
  const store = new S3Store((region) => clients.s3(region));
  const roleStore = new S3Store((region) => clients.s3AsRole(region));
  // Listed beside the registry read, not after it: no cold-start latency added.
  const others = findOtherRegistries(roleStore, config);
  const [keyRing, registry] = await Promise.all([loadKeyRing(config, () => clients.kms()), openBucketRegistry(roleStore, config, options.registry)]);
  reportOtherPrefixes(config.keyPrefix, registry, await others);
  const deletions = openDeletionMarks(config, store, roleStore);
  return { config, clients, store, roleStore, keyRing, registry, requestStats, deletions, pendingDeletions: new PendingDeletionsIndex(deletions) };
}

let runtime: Promise<Runtime> | undefined;
let created: Runtime | undefined;

/** The process's runtime, created on first use (cold start). A failed cold start is retried next call. */
export function getRuntime(): Promise<Runtime> {
  if (runtime === undefined) {
    const starting = createRuntime();
    runtime = starting;
    starting.then(
      (r) => {
        if (runtime === starting) created = r;
      },
      () => {
        if (runtime === starting) runtime = undefined;
      },
    );
  }
  return runtime;
}

/** The process's runtime if its cold start has completed (metrics middlewares, which must not start one). */
export function currentRuntime(): Runtime | undefined {
  return created;
}

/** Forgets the process's runtime, so the next `getRuntime()` is a cold start (tests that change the environment). */
export function resetRuntime(): void {
  runtime = undefined;
  created = undefined;
}
