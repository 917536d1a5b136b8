/**
 * The buckets a segment may be in. Uploads write to `current`; lookups (upload's "already stored?", fetch)
 * search `searchOrder()` (current first, then older buckets newest first); cleanup deletes from `all()`.
 *
 * The registry itself is one JSON object in S3_STORAGE_STATE_BUCKET at objectKeys.registryKey(prefix):
 *   {"version":1,"buckets":[{"bucket":"a","region":"eu-west-1","firstSeen":"2026-11-25T04:00:00.000Z"}, …]}
 * oldest first (docs/FORMAT.md). A cold start only READS it: fetch, cleanup and the CLI never write it, so a
 * mistyped bucket name in a `status` or a `restore` leaves no trace. The current bucket is searched and
 * cleaned whether or not it is registered yet; the one writer that adds it is the upload path, once it has
 * proved the bucket exists (registryWrites.ts). A registry that cannot be read or parsed is a RegistryError,
 * never silently reset. Without S3_STORAGE_STATE_BUCKET the current bucket is the only one
 * (SingleBucketRegistry).
 */
import * as z from 'zod';
import { BUCKET_NAME_MESSAGE, isBucketName } from './bucketNames.ts';
import type { Config } from './config.ts';
import { RegistryError } from './errors.ts';
import { registryKey } from './objectKeys.ts';
import type { BucketRef, S3Store } from './s3Store.ts';

export interface BucketRegistry {
  readonly current: BucketRef;
  /** False while the current bucket is not in the stored registry (no upload has proved it yet). */
  readonly currentRegistered?: boolean;
  /** Current bucket first, then the others newest first. */
  searchOrder(): Promise<readonly BucketRef[]>;
  /** Every bucket ever used (cleanup deletes from all of them). */
  all(): Promise<readonly BucketRef[]>;
}

export class SingleBucketRegistry implements BucketRegistry {
  readonly currentRegistered = true;
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
  .strictObject({ version: z.literal(1), buckets: z.array(entrySchema) })
  .refine((r) => new Set(r.buckets.map((b) => `${b.bucket}\n${b.region}`)).size === r.buckets.length, 'lists a bucket twice');
export type RegistryDocument = z.infer<typeof registrySchema>;

/**
 * The registry as listed: current first for lookups, everything for cleanup. The current bucket is part of
 * both even before it is registered (the configured bucket is where new segments go).
 */
export class ListedBucketRegistry implements BucketRegistry {
  readonly currentRegistered: boolean;
  /** Oldest first, as stored, with the current bucket last when it is not registered. */
  readonly entries: readonly BucketRef[];
  constructor(
    readonly current: BucketRef,
    /** Oldest first, as stored. */
    registered: readonly BucketRef[],
    /**
     * True when no registry is stored under this prefix yet (nothing was uploaded under it): a new prefix (or
     * state bucket) starts a fresh history. Said at cold start when other prefixes have registries.
     */
    readonly fresh = false,
  ) {
    this.currentRegistered = registered.some((e) => sameBucket(e, current));
    this.entries = this.currentRegistered ? registered : [...registered, current];
  }
  async searchOrder(): Promise<readonly BucketRef[]> {
    const others = this.entries.filter((e) => !sameBucket(e, this.current)).reverse();
    return [this.current, ...others];
  }
  async all(): Promise<readonly BucketRef[]> {
    return this.entries;
  }
}

export const sameBucket = (a: BucketRef, b: BucketRef): boolean => a.bucket === b.bucket && a.region === b.region;

/** Where the registry lives: the state bucket, its key, and how errors name it. */
export interface RegistryLocation {
  readonly state: BucketRef;
  readonly key: string;
  /** "registry s3://state/key", for messages. */
  readonly where: string;
}

/** The registry's location, or undefined without S3_STORAGE_STATE_BUCKET. */
export function registryLocation(config: Pick<Config, 'stateBucket' | 'awsRegion' | 'keyPrefix'>): RegistryLocation | undefined {
  if (config.stateBucket === undefined) return undefined;
  const key = registryKey(config.keyPrefix);
  return { state: { bucket: config.stateBucket, region: config.awsRegion }, key, where: `registry s3://${config.stateBucket}/${key}` };
}

/** The stored registry and its ETag (for a conditional write), or undefined when there is none yet. */
export async function readRegistry(store: Pick<S3Store, 'getSmall'>, at: RegistryLocation): Promise<{ doc: RegistryDocument; etag: string | undefined } | undefined> {
  let found: Awaited<ReturnType<S3Store['getSmall']>>;
  try {
    found = await store.getSmall(at.state, at.key);
  } catch (err) {
    throw new RegistryError(`${at.where} cannot be read (${err instanceof Error ? err.message : String(err)}); check S3_STORAGE_STATE_BUCKET and the role's s3:GetObject right on it`, { cause: err });
  }
  return found === undefined ? undefined : { doc: parseRegistry(found.body, at.where), etag: found.etag };
}

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

/**
 * Reads the registry (never writes it). Throws RegistryError when the state bucket cannot be reached or the
 * registry cannot be parsed.
 */
export async function openBucketRegistry(store: Pick<S3Store, 'getSmall'>, config: Config): Promise<BucketRegistry> {
  const current: BucketRef = { bucket: config.bucket, region: config.region };
  const at = registryLocation(config);
  if (at === undefined) return new SingleBucketRegistry(current);
  const stored = await readRegistry(store, at);
  return new ListedBucketRegistry(current, stored?.doc.buckets.map((b) => ({ bucket: b.bucket, region: b.region })) ?? [], stored === undefined);
}
