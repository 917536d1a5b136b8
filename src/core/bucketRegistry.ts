/**
 * The buckets a segment may be in. Uploads write to `current`; lookups (upload's "already stored?", fetch)
 * search `searchOrder()` (current first, then older buckets newest first); cleanup deletes from `all()`.
 *
 * The registry itself is one JSON object in S3_STORAGE_STATE_BUCKET at objectKeys.registryKey(prefix):
 *   {"version":1,"buckets":[{"bucket":"a","region":"eu-west-1","firstSeen":"2026-11-25T04:00:00.000Z"}, …]}
 * oldest first. Every cold start reads it and, when the current bucket is missing, appends it with a
 * conditional write (If-None-Match: * to create, If-Match: <etag> to update), so of two cold starts racing,
 * one wins and the other re-reads and retries: no entry is ever lost. A registry that cannot be read or
 * parsed is a RegistryError, never silently reset. Without S3_STORAGE_STATE_BUCKET the current bucket is the
 * only one (SingleBucketRegistry).
 */
import * as z from 'zod';
import { BUCKET_NAME_MESSAGE, isBucketName } from './bucketNames.ts';
import type { Config } from './config.ts';
import { BucketStorageError, RegistryError, StorageError } from './errors.ts';
import { registryKey } from './objectKeys.ts';
import { isConditionFailure, type BucketRef, type S3Store } from './s3Store.ts';

export interface BucketRegistry {
  readonly current: BucketRef;
  /** Current bucket first, then the others newest first. */
  searchOrder(): Promise<readonly BucketRef[]>;
  /** Every bucket ever used (cleanup deletes from all of them). */
  all(): Promise<readonly BucketRef[]>;
}

export class SingleBucketRegistry implements BucketRegistry {
  constructor(readonly current: BucketRef) {}
  async searchOrder(): Promise<readonly BucketRef[]> {
    return [this.current];
  }
  async all(): Promise<readonly BucketRef[]> {
    return [this.current];
  }
}

const entrySchema = z.strictObject({
  bucket: z.string().refine(isBucketName, BUCKET_NAME_MESSAGE),
  region: z.string().regex(/^[a-z0-9-]{2,32}$/, 'is not a region'),
  firstSeen: z.iso.datetime({ message: 'is not an ISO date-time' }),
});
const registrySchema = z
  .strictObject({ version: z.literal(1), buckets: z.array(entrySchema).min(1, 'lists no bucket') })
  .refine((r) => new Set(r.buckets.map((b) => `${b.bucket}\n${b.region}`)).size === r.buckets.length, 'lists a bucket twice');
export type RegistryDocument = z.infer<typeof registrySchema>;

/** The registry as listed: current first for lookups, everything for cleanup. */
export class ListedBucketRegistry implements BucketRegistry {
  constructor(
    readonly current: BucketRef,
    /** Oldest first, as stored. */
    readonly entries: readonly BucketRef[],
    /** True when this cold start created the registry: a new prefix (or state bucket) starts a fresh history. */
    readonly fresh = false,
  ) {}
  async searchOrder(): Promise<readonly BucketRef[]> {
    const others = this.entries.filter((e) => !sameBucket(e, this.current)).reverse();
    return [this.current, ...others];
  }
  async all(): Promise<readonly BucketRef[]> {
    return this.entries;
  }
}

const sameBucket = (a: BucketRef, b: BucketRef) => a.bucket === b.bucket && a.region === b.region;

export function parseRegistry(text: string, where: string): RegistryDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new RegistryError(`${where} is not JSON (${why}); it was damaged or edited by hand. Restore it from the state bucket's versions; it is never reset automatically`, { cause: err });
  }
  const parsed = registrySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RegistryError(`${where} is not a valid registry: ${issue?.path.join('.') || '(document)'} ${issue?.message ?? ''}; restore it from the state bucket's versions, it is never reset automatically`, { cause: parsed.error });
  }
  return parsed.data;
}

export interface OpenRegistryOptions {
  readonly maxAttempts?: number;
  readonly now?: () => Date;
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Reads the registry and registers the current bucket if it is missing. Throws RegistryError when the state
 * bucket cannot be reached, the registry cannot be parsed, or the race is lost `maxAttempts` times.
 */
export async function openBucketRegistry(store: Pick<S3Store, 'getSmall' | 'putSmall'>, config: Config, options: OpenRegistryOptions = {}): Promise<BucketRegistry> {
  const current: BucketRef = { bucket: config.bucket, region: config.region };
  if (config.stateBucket === undefined) return new SingleBucketRegistry(current);
  const state: BucketRef = { bucket: config.stateBucket, region: config.awsRegion };
  const key = registryKey(config.keyPrefix);
  const where = `registry s3://${state.bucket}/${key}`;
  const maxAttempts = options.maxAttempts ?? 10;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    let found: Awaited<ReturnType<S3Store['getSmall']>>;
    try {
      found = await store.getSmall(state, key);
    } catch (err) {
      throw new RegistryError(`${where} cannot be read (${err instanceof Error ? err.message : String(err)}); check S3_STORAGE_STATE_BUCKET and the role's s3:GetObject right on it`, { cause: err });
    }
    const doc = found === undefined ? undefined : parseRegistry(found.body, where);
    const entries: BucketRef[] = doc?.buckets.map((b) => ({ bucket: b.bucket, region: b.region })) ?? [];
    if (entries.some((e) => sameBucket(e, current))) return new ListedBucketRegistry(current, entries);
    const next: RegistryDocument = {
      version: 1,
      buckets: [...(doc?.buckets ?? []), { ...current, firstSeen: (options.now?.() ?? new Date()).toISOString() }],
    };
    try {
      const condition = found === undefined || found.etag === undefined ? ({ ifNoneMatch: '*' } as const) : { ifMatch: found.etag };
      await store.putSmall(state, key, `${JSON.stringify(next, null, 2)}\n`, condition);
      return new ListedBucketRegistry(current, next.buckets.map((b) => ({ bucket: b.bucket, region: b.region })), doc === undefined);
    } catch (err) {
      if (!isConditionFailure(err)) {
        if (err instanceof BucketStorageError && !(err instanceof StorageError)) throw err;
        throw new RegistryError(`${where} cannot be written (${err instanceof Error ? err.message : String(err)}); check the role's s3:PutObject right on it`, { cause: err });
      }
      if (attempt >= maxAttempts) throw new RegistryError(`${where}: lost the race to register s3://${current.bucket} ${attempt} times; try again`, { cause: err });
      // Jittered exponential back-off, capped: 50 ms, 100 ms, … ≤ 2 s.
      await sleep(Math.random() * Math.min(2_000, 50 * 2 ** attempt));
    }
  }
}
