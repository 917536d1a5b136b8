/**
 * The only writes to the registry of buckets (docs/FORMAT.md "Registry of buckets"), each a conditional PUT
 * (If-None-Match: * to create it, If-Match: <etag> to replace it) retried on a lost race, so concurrent
 * writers never lose an entry:
 *  - the upload path registers the current bucket before it writes the first object there, after a HEAD of the
 *    bucket has proved it exists and the role may use it (BucketRegistrar); a crash therefore never leaves an
 *    object in an unregistered bucket, and a mistyped bucket name is never registered;
 *  - `bucket-storage registry remove` removes an entry (removeRegistryEntry).
 * Cold starts, fetch, cleanup and every other CLI command only read it (bucketRegistry.ts).
 */
import { readRegistry, registryLocation, sameBucket, type BucketRegistry, type RegistryDocument, type RegistryLocation } from './bucketRegistry.ts';
import type { Config } from './config.ts';
import { BucketStorageError, RegistryError, StorageError } from './errors.ts';
import type { BucketRef, S3Store } from './s3Store.ts';

export type RegistryStore = Pick<S3Store, 'getSmall' | 'putSmall'>;

export interface UpdateOptions {
  readonly maxAttempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A lost conditional write: 412 Precondition Failed, or 409 ConditionalRequestConflict. */
function lostRace(err: unknown): boolean {
  return err instanceof StorageError && (err.httpStatus === 412 || err.httpStatus === 409);
}

/**
 * Reads the registry, applies `edit` and writes the result conditionally; on a lost race, re-reads and edits
 * again (jittered back-off). `edit` returns undefined for "nothing to change" (no write) and may throw to
 * refuse. Resolves to the registry as stored afterwards (undefined when there is none and nothing changed).
 */
export async function updateRegistry(
  store: RegistryStore,
  at: RegistryLocation,
  edit: (doc: RegistryDocument | undefined) => RegistryDocument | undefined,
  options: UpdateOptions = {},
): Promise<RegistryDocument | undefined> {
  const maxAttempts = options.maxAttempts ?? 10;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    const stored = await readRegistry(store, at);
    const next = edit(stored?.doc);
    if (next === undefined) return stored?.doc;
    try {
      const condition = stored === undefined || stored.etag === undefined ? ({ ifNoneMatch: '*' } as const) : { ifMatch: stored.etag };
      await store.putSmall(at.state, at.key, `${JSON.stringify(next, null, 2)}\n`, condition);
      return next;
    } catch (err) {
      if (!lostRace(err)) {
        if (err instanceof BucketStorageError && !(err instanceof StorageError)) throw err;
        throw new RegistryError(`${at.where} cannot be written (${err instanceof Error ? err.message : String(err)}); check the role's s3:PutObject right on it`, { cause: err });
      }
      if (attempt >= maxAttempts) throw new RegistryError(`${at.where}: lost the race to update it ${attempt} times; try again`, { cause: err });
      // Jittered exponential back-off, capped: 50 ms, 100 ms, … ≤ 2 s.
      await sleep(Math.random() * Math.min(2_000, 50 * 2 ** attempt));
    }
  }
}

/** The registry with `ref` appended (first seen `now`), or undefined when it is already listed. */
export function withBucket(doc: RegistryDocument | undefined, ref: BucketRef, now: Date): RegistryDocument | undefined {
  if (doc?.buckets.some((b) => sameBucket(b, ref))) return undefined;
  return { version: 1, buckets: [...(doc?.buckets ?? []), { bucket: ref.bucket, region: ref.region, firstSeen: now.toISOString() }] };
}

/** Registers the current bucket before the first object is written to it (the upload path's one call). */
export interface BucketRegistrar {
  /** Resolves once the current bucket is in the registry; a StorageError when the bucket cannot be used. */
  ensureCurrentRegistered(): Promise<void>;
}

export interface RegistrarOptions extends UpdateOptions {
  readonly now?: () => Date;
}

/**
 * The registrar of one runtime. Knows from the cold start's read whether the current bucket is registered:
 * then it does nothing. Otherwise the first call HEADs the bucket (proof that it exists and the role may use
 * it) and appends it; later calls reuse that outcome. A failed attempt is tried again by the next call.
 */
export function createRegistrar(
  stores: { readonly registry: RegistryStore; readonly buckets: Pick<S3Store, 'headBucket'> },
  config: Config,
  registry: BucketRegistry,
  options: RegistrarOptions = {},
): BucketRegistrar {
  const at = registryLocation(config);
  let done: Promise<void> | undefined = at === undefined || registry.currentRegistered !== false ? Promise.resolve() : undefined;
  const register = async (where: RegistryLocation): Promise<void> => {
    await stores.buckets.headBucket(registry.current);
    await updateRegistry(stores.registry, where, (doc) => withBucket(doc, registry.current, options.now?.() ?? new Date()), options);
  };
  return {
    ensureCurrentRegistered() {
      if (done === undefined && at !== undefined) {
        const attempt = register(at);
        done = attempt;
        attempt.catch(() => {
          if (done === attempt) done = undefined;
        });
      }
      return done ?? Promise.resolve();
    },
  };
}

/** Why `ref` may not leave the registry, or undefined. */
export type RemovalCheck = (ref: BucketRef) => Promise<string | undefined>;

/**
 * Removes `bucket` (in `region`, when given: needed only when the name is listed in several regions) from the
 * registry with a conditional write. Refused, with a RegistryError naming the reason, for the current bucket,
 * for a bucket that is not listed, and whenever `check` objects (segment objects still there).
 */
export async function removeRegistryEntry(
  store: RegistryStore,
  config: Config,
  target: { readonly bucket: string; readonly region?: string | undefined },
  check: RemovalCheck,
  options: UpdateOptions = {},
): Promise<{ removed: BucketRef; registry: RegistryDocument }> {
  const at = registryLocation(config);
  if (at === undefined) throw new RegistryError('S3_STORAGE_STATE_BUCKET is not set: there is no registry to remove a bucket from');
  if (target.bucket === config.bucket && (target.region === undefined || target.region === config.region)) {
    throw new RegistryError(`s3://${target.bucket} is the current bucket (S3_STORAGE_BUCKET): it is never removed; switch to another bucket first`);
  }
  // The listed entry, found on a first read and checked once: the write below is conditional on that read.
  const stored = await readRegistry(store, at);
  const matches = (stored?.doc.buckets ?? []).filter((b) => b.bucket === target.bucket && (target.region === undefined || b.region === target.region));
  const [entry, ...others] = matches;
  if (entry === undefined) throw new RegistryError(`s3://${target.bucket}${target.region ? ` (${target.region})` : ''} is not in the ${at.where}; bucket-storage registry list shows what is`);
  if (others.length > 0) throw new RegistryError(`s3://${target.bucket} is listed in several regions (${matches.map((m) => m.region).join(', ')}); say which with --region`);
  const removed: BucketRef = { bucket: entry.bucket, region: entry.region };
  const objection = await check(removed);
  if (objection !== undefined) throw new RegistryError(objection);
  const registry = await updateRegistry(
    store,
    at,
    (doc) => {
      if (doc === undefined || !doc.buckets.some((b) => sameBucket(b, removed))) throw new RegistryError(`s3://${removed.bucket} left the ${at.where} meanwhile; nothing to do`);
      return { version: 1, buckets: doc.buckets.filter((b) => !sameBucket(b, removed)) };
    },
    options,
  );
  return { removed, registry: registry ?? { version: 1, buckets: [] } };
}
