/**
 * measureStorage against a scripted paged listing: only segment keys count, a stop is asked between pages (never
 * before the first, so every measurement makes progress), and the listing is always released. Written for the
 * survivors of the mutation run `cleanup` (docs/MUTATION.md).
 */
import { describe, expect, it } from 'vitest';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import type { ListedObject } from '../src/core/s3Store.ts';
import { measureStorage } from '../src/core/storageUsage.ts';

const REF = { bucket: 'data-bucket', region: 'eu-west-1' };
const PREFIX = 'cluster-a/';

const listed = (key: string, size: number): ListedObject => ({ key, size, etag: undefined, lastModified: undefined });
const segment = (n: number, size: number) => listed(formatSegmentKey(PREFIX, { dataspace: 'ds', segmentId: `seg-${n}` }), size);

/** A listing of `pages`; records the start key it was given, how many pages were taken and whether it was released. */
function listing(pages: ListedObject[][]) {
  const seen = { startAfter: undefined as string | undefined, taken: 0, released: false };
  const store = {
    list(_ref: unknown, _prefix: string, startAfter?: string): AsyncGenerator<readonly ListedObject[]> {
      seen.startAfter = startAfter;
      return (async function* () {
        try {
          for (const page of pages) {
            seen.taken++;
            yield page;
          }
        } finally {
          seen.released = true;
        }
      })();
    },
  };
  return { store, seen };
}

describe('measureStorage', () => {
  it('counts segment objects and their bytes, not the other keys under the prefix', async () => {
    const pages = [[segment(1, 10), listed(`${PREFIX}registry.json`, 1000), segment(2, 20)], [listed(`${PREFIX}deletion-marks/x`, 7), segment(3, 30)]];
    const { store, seen } = listing(pages);
    const m = await measureStorage(store, REF, PREFIX);
    expect(m).toEqual({ objects: 3, bytes: 60, complete: true, resumeAfter: undefined });
    expect(seen.released).toBe(true);
  });

  it('asks to stop only between pages: a stop that is always true still measures the first page', async () => {
    const pages = [[segment(1, 5), segment(2, 6)], [segment(3, 7)]];
    const { store, seen } = listing(pages);
    let asked = 0;
    const m = await measureStorage(store, REF, PREFIX, { shouldStop: () => (asked++, true) });
    expect(m).toEqual({ objects: 2, bytes: 11, complete: false, resumeAfter: pages[0]!.at(-1)!.key });
    expect(asked).toBe(1);
    expect(seen.taken).toBe(1);
    expect(seen.released).toBe(true);
  });

  it('stops after the page where the stop turns true, and resumes from the counts and key it returned', async () => {
    const pages = [[segment(1, 1)], [segment(2, 2)], [segment(3, 4)]];
    let calls = 0;
    const first = await measureStorage(listing(pages).store, REF, PREFIX, { shouldStop: () => ++calls >= 2 });
    expect(first).toEqual({ objects: 2, bytes: 3, complete: false, resumeAfter: pages[1]![0]!.key });
    const { store, seen } = listing(pages.slice(2));
    const rest = await measureStorage(store, REF, PREFIX, { from: first });
    expect(seen.startAfter).toBe(first.resumeAfter);
    expect(rest).toEqual({ objects: 3, bytes: 7, complete: true, resumeAfter: undefined });
  });
});
