/**
 * Where deletion marks live and the five things done to them: create (conditional, never overwrites), list in
 * due order, read, replace (conditional on the ETag read, so a cancellation and cleanup's claim never both
 * win), remove. Marks live in S3_STORAGE_STATE_BUCKET, or in the current bucket when no state bucket is set;
 * their keys (objectKeys.formatDeletionMarkKey) never parse as segment keys.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.ts';
import { deletionMarksPrefix, formatDeletionMarkKey, markDueTime, parseDeletionMarkKey, type SegmentIdentity } from '../objectKeys.ts';
import type { BucketRef, S3Store } from '../s3Store.ts';
import { encodeMark, newMark, parseMark, type MarkDocument } from './document.ts';

export type MarkS3 = Pick<S3Store, 'getSmall' | 'putSmall' | 'list' | 'deleteBatch'>;

/** A mark as a listing shows it. */
export interface ListedMark {
  readonly key: string;
  readonly due: Date;
  readonly etag: string | undefined;
}

/** A mark as read: its document and the ETag of that version. */
export interface ReadMark {
  readonly key: string;
  readonly etag: string | undefined;
  readonly doc: MarkDocument;
}

const HOUR_MS = 3_600_000;

export class DeletionMarks {
  constructor(
    readonly location: BucketRef,
    readonly prefix: string,
    private readonly store: MarkS3,
    private readonly randomId: () => string = () => randomBytes(8).toString('hex'),
  ) {}

  /** `s3://bucket/<prefix>_bucket-storage/deletions/`, for messages. */
  get where(): string {
    return `s3://${this.location.bucket}/${deletionMarksPrefix(this.prefix)}`;
  }

  /** Writes a new pending mark (If-None-Match: *, so nothing is ever overwritten), due `delayHours` after `now`. */
  async create(segments: readonly SegmentIdentity[], now: Date, delayHours: number): Promise<ReadMark> {
    const due = markDueTime(now, delayHours * HOUR_MS);
    const doc = newMark(segments, now, due);
    const key = formatDeletionMarkKey(this.prefix, due, this.randomId());
    const etag = await this.store.putSmall(this.location, key, encodeMark(doc), { ifNoneMatch: '*' });
    return { key, etag, doc };
  }

  /** The marks, a page at a time in due order; with `dueBy`, only those due at or before it. */
  async *list(dueBy?: Date): AsyncGenerator<readonly ListedMark[]> {
    for await (const page of this.store.list(this.location, deletionMarksPrefix(this.prefix))) {
      const marks: ListedMark[] = [];
      for (const object of page) {
        const parsed = parseDeletionMarkKey(this.prefix, object.key);
        if (parsed === undefined) continue;
        // Keys sort by due time: the first one not yet due ends the listing.
        if (dueBy !== undefined && parsed.due.getTime() > dueBy.getTime()) {
          if (marks.length > 0) yield marks;
          return;
        }
        marks.push({ key: object.key, due: parsed.due, etag: object.etag });
      }
      if (marks.length > 0) yield marks;
    }
  }

  /** Every mark (or every mark due by `dueBy`), in due order. */
  async all(dueBy?: Date): Promise<ListedMark[]> {
    const marks: ListedMark[] = [];
    for await (const page of this.list(dueBy)) marks.push(...page);
    return marks;
  }

  /** The mark's current version, or undefined when it is gone. Throws DeletionMarkError when damaged. */
  async read(key: string): Promise<ReadMark | undefined> {
    const found = await this.store.getSmall(this.location, key);
    if (found === undefined) return undefined;
    return { key, etag: found.etag, doc: parseMark(found.body, `deletion mark s3://${this.location.bucket}/${key}`) };
  }

  /**
   * Replaces `mark` by `doc` if it is still the version read (If-Match on its ETag). A StorageError with
   * httpStatus 412 (or 409) means another writer changed it first: read it again and decide again.
   */
  async replace(mark: ReadMark, doc: MarkDocument): Promise<ReadMark> {
    const condition = mark.etag === undefined ? undefined : { ifMatch: mark.etag };
    const etag = await this.store.putSmall(this.location, mark.key, encodeMark(doc), condition);
    return { key: mark.key, etag, doc };
  }

  /** Removes marks (up to 1,000 a request); returns the keys that could not be removed, with reasons. */
  async remove(keys: readonly string[]): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    for (let i = 0; i < keys.length; i += 1000) {
      for (const [key, reason] of await this.store.deleteBatch(this.location, keys.slice(i, i + 1000))) failed.set(key, reason);
    }
    return failed;
  }
}

/**
 * The marks of this configuration: in the state bucket (reached with the function's role, `roleStore`), or in
 * the current bucket without one (a data bucket: `dataStore`, the static keys when set).
 */
export function openDeletionMarks(config: Pick<Config, 'stateBucket' | 'awsRegion' | 'bucket' | 'region' | 'keyPrefix'>, dataStore: MarkS3, roleStore: MarkS3): DeletionMarks {
  if (config.stateBucket === undefined) return new DeletionMarks({ bucket: config.bucket, region: config.region }, config.keyPrefix, dataStore);
  return new DeletionMarks({ bucket: config.stateBucket, region: config.awsRegion }, config.keyPrefix, roleStore);
}
