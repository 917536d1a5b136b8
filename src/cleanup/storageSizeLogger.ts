/**
 * LogScale's bucket storage size logger, run by the scheduled cleanup after its deletions: at most once every
 * BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES (default 60; BUCKET_STORAGE_SIZE_LOGGER_ENABLED=false turns it off)
 * it logs one `bucket storage size` line per registered bucket (segment objects and bytes under the prefix)
 * and emits them as metrics (StoredObjects, StoredBytes per bucket).
 *
 * Bounded in time, never in the way of deletions: it runs after them, within what is left of the invocation
 * (at most MAX_BUDGET_MS). A bucket too large to list in one run is measured over several: where the listing
 * stopped and the counts so far are kept in the state document, and the next run resumes there.
 *
 * Where the state lives: with S3_STORAGE_STATE_BUCKET, one small JSON object beside the registry
 * (`<prefix>_bucket-storage/storage-size.json`), written with conditional writes. Durable because a scheduled
 * function often starts in a fresh container: a per-container memory would log on every cold start and could
 * never finish a listing that needs several runs. Without a state bucket (one bucket, local runs) the state is
 * the warm container's memory (MemorySizeLogState).
 */
import * as z from 'zod';
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import type { Config } from '../core/config.ts';
import { StorageError } from '../core/errors.ts';
import { errorFields, logger } from '../core/logger.ts';
import { recordStorageUsed } from '../core/metrics.ts';
import { storageSizeKey } from '../core/objectKeys.ts';
import type { Runtime } from '../core/runtime.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';
import { measureStorage } from '../core/storageUsage.ts';

/** The most a run spends measuring, whatever time its invocation has left. */
export const MAX_BUDGET_MS = 60_000;

const bucketSchema = z.strictObject({
  bucket: z.string(),
  region: z.string(),
  objects: z.number().int().nonnegative(),
  bytes: z.number().nonnegative(),
  complete: z.boolean(),
  resumeAfter: z.string().optional(),
  error: z.string().optional(),
});
const stateSchema = z.strictObject({
  version: z.literal(1),
  lastLoggedAt: z.iso.datetime().optional(),
  measuring: z.strictObject({ startedAt: z.iso.datetime(), buckets: z.array(bucketSchema) }).optional(),
});
export type SizeLogDocument = z.infer<typeof stateSchema>;
type BucketProgress = z.infer<typeof bucketSchema>;

/** Where the logger keeps its state between runs. `write` resolves false when another run wrote first. */
export interface SizeLogState {
  read(): Promise<{ readonly doc: SizeLogDocument; readonly etag: string | undefined } | undefined>;
  write(doc: SizeLogDocument, etag: string | undefined): Promise<boolean>;
}

/** The state in the state bucket, beside the registry; conditional writes so two runs never both log. */
export class S3SizeLogState implements SizeLogState {
  constructor(
    private readonly store: Pick<S3Store, 'getSmall' | 'putSmall'>,
    private readonly ref: BucketRef,
    private readonly key: string,
  ) {}

  async read(): Promise<{ doc: SizeLogDocument; etag: string | undefined } | undefined> {
    const got = await this.store.getSmall(this.ref, this.key);
    if (got === undefined) return undefined;
    const parsed = stateSchema.safeParse(safeJson(got.body));
    // A damaged state document only costs a fresh measurement: it is replaced, never trusted.
    return parsed.success ? { doc: parsed.data, etag: got.etag } : { doc: { version: 1 }, etag: got.etag };
  }

  async write(doc: SizeLogDocument, etag: string | undefined): Promise<boolean> {
    try {
      await this.store.putSmall(this.ref, this.key, JSON.stringify(doc), etag === undefined ? { ifNoneMatch: '*' } : { ifMatch: etag });
      return true;
    } catch (err) {
      if (err instanceof StorageError && (err.httpStatus === 412 || err.httpStatus === 409)) return false;
      throw err;
    }
  }
}

/** The state in the warm container's memory (no state bucket). */
export class MemorySizeLogState implements SizeLogState {
  #doc: SizeLogDocument | undefined;
  async read(): Promise<{ doc: SizeLogDocument; etag: undefined } | undefined> {
    return this.#doc === undefined ? undefined : { doc: this.#doc, etag: undefined };
  }
  async write(doc: SizeLogDocument): Promise<boolean> {
    this.#doc = doc;
    return true;
  }
}

/** Per warm container: the memory state of runtimes without a state bucket (one per runtime). */
const memoryStates = new WeakMap<object, MemorySizeLogState>();

/** The state for `runtime`: in its state bucket when it has one, else in this container's memory. */
export function sizeLogStateFor(runtime: Pick<Runtime, 'config' | 'roleStore'>): SizeLogState {
  const { stateBucket, awsRegion, keyPrefix } = runtime.config;
  // The state bucket is the stack's, in the functions' region, reached with the role (as the registry is).
  if (stateBucket !== undefined) return new S3SizeLogState(runtime.roleStore, { bucket: stateBucket, region: awsRegion }, storageSizeKey(keyPrefix));
  let memory = memoryStates.get(runtime);
  if (memory === undefined) {
    memory = new MemorySizeLogState();
    memoryStates.set(runtime, memory);
  }
  return memory;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface SizeLogRuntime {
  readonly config: Pick<Config, 'keyPrefix' | 'sizeLogger'>;
  readonly registry: BucketRegistry;
  readonly store: Pick<S3Store, 'list'>;
}

export interface SizeLogOptions {
  /** Milliseconds this run may spend measuring (capped at MAX_BUDGET_MS). */
  readonly budgetMs: number;
  readonly now?: () => number;
}

export type SizeLogOutcome =
  | { readonly status: 'disabled' | 'not-due' | 'raced' }
  | { readonly status: 'measuring'; readonly pending: readonly string[] }
  | { readonly status: 'logged'; readonly buckets: readonly BucketProgress[] };

/** Measures (or goes on measuring) and, once every bucket is measured, logs and emits the storage used. */
export async function logStorageSize(runtime: SizeLogRuntime, state: SizeLogState, options: SizeLogOptions): Promise<SizeLogOutcome> {
  const { enabled, intervalMinutes } = runtime.config.sizeLogger;
  if (!enabled) return { status: 'disabled' };
  const now = options.now ?? Date.now;
  const deadline = now() + Math.min(options.budgetMs, MAX_BUDGET_MS);
  const read = await state.read();
  const doc = read?.doc ?? { version: 1 };
  const lastLogged = doc.lastLoggedAt === undefined ? undefined : Date.parse(doc.lastLoggedAt);
  if (doc.measuring === undefined && lastLogged !== undefined && now() - lastLogged < intervalMinutes * 60_000) return { status: 'not-due' };

  const buckets = await progressFor(runtime.registry, doc.measuring?.buckets ?? []);
  for (const [i, b] of buckets.entries()) {
    if (b.complete) continue;
    if (now() >= deadline) break;
    buckets[i] = await measureOne(runtime, b, () => now() >= deadline);
  }
  const pending = buckets.filter((b) => !b.complete);
  if (pending.length > 0) {
    const saved = await state.write({ ...doc, measuring: { startedAt: doc.measuring?.startedAt ?? new Date(now()).toISOString(), buckets } }, read?.etag);
    return saved ? { status: 'measuring', pending: pending.map((b) => b.bucket) } : { status: 'raced' };
  }
  if (!(await state.write({ version: 1, lastLoggedAt: new Date(now()).toISOString() }, read?.etag))) return { status: 'raced' };
  for (const b of buckets) report(b, runtime.registry.current);
  return { status: 'logged', buckets };
}

/** The buckets to measure: the registry's, carrying over the progress of an unfinished measurement. */
async function progressFor(registry: BucketRegistry, earlier: readonly BucketProgress[]): Promise<BucketProgress[]> {
  const all = await registry.all();
  return all.map((ref) => earlier.find((e) => e.bucket === ref.bucket && e.region === ref.region) ?? { ...ref, objects: 0, bytes: 0, complete: false });
}

async function measureOne(runtime: SizeLogRuntime, b: BucketProgress, shouldStop: () => boolean): Promise<BucketProgress> {
  try {
    const m = await measureStorage(runtime.store, b, runtime.config.keyPrefix, { from: { objects: b.objects, bytes: b.bytes, resumeAfter: b.resumeAfter }, shouldStop });
    return { bucket: b.bucket, region: b.region, objects: m.objects, bytes: m.bytes, complete: m.complete, ...(m.resumeAfter !== undefined ? { resumeAfter: m.resumeAfter } : {}) };
  } catch (err) {
    // A bucket that cannot be listed is reported as such; it does not hold the others' report back.
    logger.warn('bucket storage size: the bucket cannot be listed', { bucket: b.bucket, ...errorFields(err) });
    return { bucket: b.bucket, region: b.region, objects: b.objects, bytes: b.bytes, complete: true, error: err instanceof Error ? err.message : String(err) };
  }
}

function report(b: BucketProgress, current: BucketRef): void {
  const isCurrent = b.bucket === current.bucket && b.region === current.region;
  if (b.error !== undefined) {
    logger.warn('bucket storage size', { bucket: b.bucket, region: b.region, current: isCurrent, unavailable: b.error });
    return;
  }
  logger.info('bucket storage size', { bucket: b.bucket, region: b.region, current: isCurrent, segmentObjects: b.objects, bytes: b.bytes });
  recordStorageUsed(b.bucket, b);
}
