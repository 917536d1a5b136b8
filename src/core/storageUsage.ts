/**
 * Storage used in a bucket: the segment objects under the configured prefix (keys the key-naming module
 * accepts; anything else in the bucket is not ours and not counted) and their bytes, from a paged listing
 * (S3Store.list, 1,000 keys a request; the list gives sizes, so no HEAD). A measurement can be bounded in time
 * and resumed: it stops between pages when `shouldStop()` says so and returns where it got to (`resumeAfter`),
 * which a later measurement passes back in (the cleanup's size logger does, across runs).
 */
import { parseSegmentKey } from './objectKeys.ts';
import type { BucketRef, S3Store } from './s3Store.ts';

export interface StorageUsed {
  /** Segment objects counted so far. */
  readonly objects: number;
  /** Their stored bytes. */
  readonly bytes: number;
}

export interface Measurement extends StorageUsed {
  /** True when the listing reached the end; otherwise `resumeAfter` is the last key counted. */
  readonly complete: boolean;
  readonly resumeAfter: string | undefined;
}

export interface MeasureOptions {
  /** Counts carried over from an earlier, unfinished measurement, and the key it stopped after. */
  readonly from?: { readonly objects: number; readonly bytes: number; readonly resumeAfter: string | undefined };
  /** Asked before each page but the first; true stops the measurement there. */
  readonly shouldStop?: () => boolean;
  /** Called after each page with the counts so far (progress on a terminal). */
  readonly onPage?: (used: StorageUsed) => void;
}

/** Measures the segment objects of `ref` under `prefix`. Rejects with the listing's StorageError. */
export async function measureStorage(store: Pick<S3Store, 'list'>, ref: BucketRef, prefix: string, options: MeasureOptions = {}): Promise<Measurement> {
  let objects = options.from?.objects ?? 0;
  let bytes = options.from?.bytes ?? 0;
  let last = options.from?.resumeAfter;
  const pages = store.list(ref, prefix, last);
  try {
    for (let first = true; ; first = false) {
      // Asked before the next request, so a stop costs no page that is then thrown away.
      if (!first && options.shouldStop?.() === true) return { objects, bytes, complete: false, resumeAfter: last };
      const page = await pages.next();
      if (page.done === true) return { objects, bytes, complete: true, resumeAfter: undefined };
      for (const o of page.value) {
        if (parseSegmentKey(prefix, o.key) === undefined) continue;
        objects++;
        bytes += o.size;
      }
      last = page.value.at(-1)?.key ?? last;
      options.onPage?.({ objects, bytes });
    }
  } finally {
    await pages.return(undefined);
  }
}
