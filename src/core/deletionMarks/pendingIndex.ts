/**
 * Which marks list a segment, for the upload path (an announced segment cancels its pending deletion).
 *
 * Cost per upload is what matters here: the index keeps, per process (one Lambda container), every mark it has
 * read, keyed by its ETag, plus a segment → marks map. A lookup lists the marks' prefix again only when the
 * last listing is older than `maxAgeMs` (one ListObjectsV2 per 1,000 marks), and reads only the marks that are
 * new or changed since (marks are written once per cleanup batch, so a warm container reads each mark once).
 * A batch of 10 records thus costs one listing, and no PUT unless a pending deletion is really cancelled.
 * The price: a mark written less than `maxAgeMs` before an upload is not seen by it, exactly as if the
 * deletion had been announced just after the upload.
 */
import { errorFields, logger } from '../logger.ts';
import type { SegmentIdentity } from '../objectKeys.ts';
import { identityId } from './document.ts';
import type { DeletionMarks, ListedMark, ReadMark } from './markStore.ts';

export interface PendingIndexOptions {
  /** A listing younger than this is reused (default 5 s). */
  readonly maxAgeMs?: number;
  readonly now?: () => number;
  /** Marks read in parallel when the listing shows new ones (default 8). */
  readonly readConcurrency?: number;
}

export class PendingDeletionsIndex {
  readonly #marks = new Map<string, ReadMark>();
  readonly #bySegment = new Map<string, Set<string>>();
  #listedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly marks: DeletionMarks,
    private readonly options: PendingIndexOptions = {},
  ) {}

  /** The marks (as last read) that list `identity`. */
  async marksHolding(identity: SegmentIdentity): Promise<ReadMark[]> {
    await this.#refresh();
    const keys = this.#bySegment.get(identityId(identity)) ?? new Set<string>();
    return [...keys].flatMap((k) => this.#marks.get(k) ?? []);
  }

  /** Records a version of a mark this process wrote itself (a cancellation), so it is not read again. */
  update(mark: ReadMark): void {
    this.#forget(mark.key);
    this.#remember(mark);
  }

  async #refresh(): Promise<void> {
    const now = (this.options.now ?? Date.now)();
    if (now - this.#listedAt < (this.options.maxAgeMs ?? 5_000)) return;
    const listed = await this.marks.all();
    const seen = new Set(listed.map((m) => m.key));
    for (const key of [...this.#marks.keys()]) if (!seen.has(key)) this.#forget(key);
    const stale = listed.filter((m) => this.#marks.get(m.key)?.etag !== m.etag || m.etag === undefined);
    await this.#readAll(stale);
    this.#listedAt = now;
  }

  async #readAll(stale: readonly ListedMark[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < stale.length; i = next++) {
        const listed = stale[i];
        if (listed === undefined) continue;
        this.#forget(listed.key);
        try {
          const mark = await this.marks.read(listed.key);
          if (mark !== undefined) this.#remember(mark);
        } catch (err) {
          // A damaged mark is never carried out by cleanup either; it is reported there and by `status`.
          logger.error('deletion mark cannot be read; uploads do not see it', { mark: listed.key, ...errorFields(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(stale.length, this.options.readConcurrency ?? 8) }, worker));
  }

  #remember(mark: ReadMark): void {
    this.#marks.set(mark.key, mark);
    for (const s of mark.doc.segments) {
      const id = identityId(s);
      let keys = this.#bySegment.get(id);
      if (keys === undefined) this.#bySegment.set(id, (keys = new Set()));
      keys.add(mark.key);
    }
  }

  #forget(key: string): void {
    const old = this.#marks.get(key);
    if (old === undefined) return;
    this.#marks.delete(key);
    for (const s of old.doc.segments) {
      const id = identityId(s);
      const keys = this.#bySegment.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.#bySegment.delete(id);
    }
  }
}
