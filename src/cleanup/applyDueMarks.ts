/**
 * Carries out the deletion marks that are due: each is claimed (a conditional write turns it from "pending"
 * into "applying", after which no cancellation can win), its segments' keys are deleted from every registered
 * bucket (marks grouped so one DeleteObjects per bucket carries up to 1,000 keys), and a mark is removed only
 * once all its keys are gone from every bucket. A kill anywhere leaves the mark (pending or applying) for the
 * next run, which carries it out again: deleting a key that is already gone changes nothing.
 */
import { MAX_SEGMENTS_PER_MARK, type DeletionMarks, type ReadMark } from '../core/deletionMarks/index.ts';
import { StorageError } from '../core/errors.ts';
import { errorFields, logger } from '../core/logger.ts';
import { formatSegmentKey } from '../core/objectKeys.ts';
import { isConditionFailure, type BucketRef, type S3Store } from '../core/s3Store.ts';
import { deleteEverywhere } from './deleteEverywhere.ts';

export interface DueContext {
  readonly marks: DeletionMarks;
  readonly store: Pick<S3Store, 'deleteBatch'>;
  readonly buckets: readonly BucketRef[];
  readonly keyPrefix: string;
  readonly dryRun: boolean;
}

export interface DueOutcome {
  marksApplied: number;
  /** Segment keys deleted (each counted once, whatever the number of buckets). */
  segmentsDeleted: number;
  deleteRequests: number;
  deletedPerBucket: Record<string, number>;
  failures: string[];
}

export const emptyDueOutcome = (): DueOutcome => ({ marksApplied: 0, segmentsDeleted: 0, deleteRequests: 0, deletedPerBucket: {}, failures: [] });

/** Carries out every mark due at `now`, while `keepGoing()` says the budget allows. */
export async function applyDueMarks(ctx: DueContext, now: Date, keepGoing: () => boolean): Promise<DueOutcome> {
  return applyMarks(ctx, (await ctx.marks.all(now)).map((m) => m.key), now, keepGoing);
}

/** Carries out the marks `keys` (due or not: `delete --now`), while `keepGoing()` says the budget allows. */
export async function applyMarks(ctx: DueContext, keys: readonly string[], now: Date, keepGoing: () => boolean): Promise<DueOutcome> {
  const outcome = emptyDueOutcome();
  const done: string[] = [];
  let group: ReadMark[] = [];
  let groupSize = 0;
  for (const key of keys) {
    if (!keepGoing()) break;
    const mark = await claimOrReport(ctx, key, now, outcome);
    if (mark === undefined) continue;
    if (groupSize + mark.doc.segments.length > MAX_SEGMENTS_PER_MARK) {
      done.push(...(await applyGroup(ctx, group, outcome)));
      group = [];
      groupSize = 0;
    }
    group.push(mark);
    groupSize += mark.doc.segments.length;
  }
  done.push(...(await applyGroup(ctx, group, outcome)));
  if (ctx.dryRun || done.length === 0) return outcome;
  const failed = await ctx.marks.remove(done);
  for (const [key, reason] of failed) outcome.failures.push(`${ctx.marks.where}${key}: mark not removed (${reason}); it is carried out again next run`);
  outcome.marksApplied += done.length - failed.size;
  return outcome;
}

/** Claims the mark (or reads it, in a dry run); a damaged or unreadable mark is reported and left alone. */
async function claimOrReport(ctx: DueContext, key: string, now: Date, outcome: DueOutcome): Promise<ReadMark | undefined> {
  try {
    return ctx.dryRun ? await ctx.marks.read(key) : await claim(ctx.marks, key, now);
  } catch (err) {
    outcome.failures.push(`${key}: ${String(errorFields(err).errorMessage)}`);
    logger.error('cleanup could not claim a due deletion mark; it is left for the next run', { mark: key, ...errorFields(err) });
    return undefined;
  }
}

/** The mark, claimed ("applying"), or undefined when it is gone. Retries when a cancellation changed it first. */
async function claim(marks: DeletionMarks, key: string, now: Date): Promise<ReadMark | undefined> {
  for (let attempt = 1; ; attempt++) {
    const mark = await marks.read(key);
    if (mark === undefined || mark.doc.state === 'applying') return mark;
    try {
      return await marks.replace(mark, { ...mark.doc, state: 'applying', claimed: now.toISOString() });
    } catch (err) {
      // Changed by a cancellation (412/409), or carried out and removed by another run (404): read it again.
      const stale = isConditionFailure(err) || (err instanceof StorageError && err.httpStatus === 404);
      if (!stale || attempt >= 10) throw err;
    }
  }
}

/** Deletes the keys of a group of claimed marks everywhere; resolves to the marks whose keys are all gone. */
async function applyGroup(ctx: DueContext, group: readonly ReadMark[], outcome: DueOutcome): Promise<string[]> {
  if (group.length === 0) return [];
  const keysOf = (mark: ReadMark) => mark.doc.segments.map((s) => formatSegmentKey(ctx.keyPrefix, s));
  const keys = [...new Set(group.flatMap(keysOf))];
  if (ctx.dryRun) {
    for (const ref of ctx.buckets) outcome.deletedPerBucket[ref.bucket] = (outcome.deletedPerBucket[ref.bucket] ?? 0) + keys.length;
    logger.info('cleanup dry run: would delete', { keys: keys.length, buckets: ctx.buckets.map((b) => b.bucket), sample: keys.slice(0, 10) });
    return [];
  }
  const result = keys.length === 0 ? undefined : await deleteEverywhere(ctx.store, ctx.buckets, keys);
  if (result !== undefined) {
    outcome.deleteRequests += result.requests;
    outcome.failures.push(...result.failures);
    for (const [bucket, n] of Object.entries(result.deletedPerBucket)) outcome.deletedPerBucket[bucket] = (outcome.deletedPerBucket[bucket] ?? 0) + n;
    outcome.segmentsDeleted += keys.filter((k) => !result.failedKeys.has(k)).length;
  }
  return group.filter((mark) => keysOf(mark).every((k) => !result?.failedKeys.has(k))).map((m) => m.key);
}
