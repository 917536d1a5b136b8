// The deletion-mark document and the pending-deletions summary of `status`, without a server: gaps the
// mutation run `marks` (docs/MUTATION.md) found in the integration tests of the marks.
import { describe, expect, it } from 'vitest';
import { markHolds, MAX_SEGMENTS_PER_MARK, newMark, parseMark, readAllMarks, summarise, type MarkDocument, type ReadMark } from '../src/core/deletionMarks/index.ts';
import { DeletionMarkError } from '../src/core/errors.ts';

const at = (iso: string) => new Date(iso);
const mark = (key: string, doc: Partial<MarkDocument> & Pick<MarkDocument, 'segments'>): ReadMark => ({
  key,
  etag: `"${key}"`,
  doc: { version: 1, state: 'pending', created: '2026-11-25T04:00:00.000Z', due: '2026-11-28T04:00:00.000Z', ...doc },
});

describe('deletion mark document', () => {
  it('a mark holds a segment only by dataspace and segment id together', () => {
    const doc = newMark([{ dataspace: 'logs', segmentId: 'seg-1' }], at('2026-11-25T04:00:00Z'), at('2026-11-28T04:00:00Z'));
    expect(markHolds(doc, { dataspace: 'logs', segmentId: 'seg-1' })).toBe(true);
    expect(markHolds(doc, { dataspace: 'audit', segmentId: 'seg-1' })).toBe(false);
    expect(markHolds(doc, { dataspace: 'logs', segmentId: 'seg-2' })).toBe(false);
  });

  it(`holds at most ${MAX_SEGMENTS_PER_MARK} distinct segments (duplicates dropped)`, () => {
    const segments = (n: number) => Array.from({ length: n }, (_, i) => ({ dataspace: 'logs', segmentId: `seg-${i}` }));
    const created = at('2026-11-25T04:00:00Z');
    expect(newMark([...segments(MAX_SEGMENTS_PER_MARK), ...segments(10)], created, created).segments).toHaveLength(MAX_SEGMENTS_PER_MARK);
    expect(() => newMark(segments(MAX_SEGMENTS_PER_MARK + 1), created, created)).toThrow(`a deletion mark holds at most ${MAX_SEGMENTS_PER_MARK} segments`);
  });

  it('a damaged mark is a DeletionMarkError naming the mark and what is wrong', () => {
    const where = 's3://state/_bucket-storage/deletions/m1';
    expect(() => parseMark('{"version":1', where)).toThrow(DeletionMarkError);
    expect(() => parseMark('{"version":1', where)).toThrow(`${where} is not JSON (`);
    const good = JSON.parse(JSON.stringify(newMark([{ dataspace: 'logs', segmentId: 'seg-1' }], at('2026-11-25T04:00:00Z'), at('2026-11-28T04:00:00Z')))) as MarkDocument;
    expect(parseMark(JSON.stringify(good), where)).toEqual(good);
    expect(() => parseMark(JSON.stringify({ ...good, segments: [{ dataspace: 'logs', segmentId: '../x' }] }), where)).toThrow(new RegExp(`${where} is not a valid deletion mark: segments\\.0\\.segmentId `));
    expect(() => parseMark('[]', where)).toThrow(`${where} is not a valid deletion mark: (document) `);
  });
});

describe('pending deletions summary (status)', () => {
  it('reads every mark in key order, with the damaged ones apart', async () => {
    const marks = new Map([
      ['m3', mark('m3', { segments: [{ dataspace: 'logs', segmentId: 'c' }] })],
      ['m1', mark('m1', { segments: [{ dataspace: 'logs', segmentId: 'a' }] })],
      ['m2', mark('m2', { segments: [{ dataspace: 'logs', segmentId: 'b' }] })],
    ]);
    const store = {
      all: async () => ['m3', 'bad', 'm1', 'gone', 'm2'].map((key) => ({ key, due: at('2026-11-28T04:00:00Z'), etag: undefined })),
      read: async (key: string) => {
        if (key === 'bad') throw new DeletionMarkError(key, 'bad is not JSON');
        return marks.get(key);
      },
    };
    for (const concurrency of [1, 2, 16]) {
      const all = await readAllMarks(store, concurrency);
      expect(all.read.map((m) => m.key)).toEqual(['m1', 'm2', 'm3']);
      expect(all.damaged).toEqual([{ key: 'bad', error: 'bad is not JSON' }]);
    }
  });

  it('counts distinct segments by state, the oldest mark and the next due, whatever the order', () => {
    const read = [
      mark('m2', { created: '2026-11-25T05:00:00.000Z', due: '2026-11-28T05:00:00.000Z', segments: [{ dataspace: 'logs', segmentId: 'a' }, { dataspace: 'logs', segmentId: 'b' }] }),
      mark('m1', { created: '2026-11-25T03:00:00.000Z', due: '2026-11-28T03:00:00.000Z', segments: [{ dataspace: 'logs', segmentId: 'a' }] }),
      mark('m3', { state: 'applying', created: '2026-11-25T04:00:00.000Z', due: '2026-11-28T04:00:00.000Z', segments: [{ dataspace: 'audit', segmentId: 'a' }] }),
      mark('m0', { created: '2026-11-20T00:00:00.000Z', due: '2026-11-21T00:00:00.000Z', segments: [] }),
    ];
    const damaged = [{ key: 'bad', error: 'not JSON' }];
    for (const order of [read, [...read].reverse()]) {
      expect(summarise({ read: order, damaged })).toEqual({
        pending: 2,
        applying: 1,
        marks: 5,
        oldest: '2026-11-25T03:00:00.000Z',
        nextDue: '2026-11-28T03:00:00.000Z',
        damaged,
      });
    }
    expect(summarise({ read: [], damaged: [] })).toEqual({ pending: 0, applying: 0, marks: 0, oldest: undefined, nextDue: undefined, damaged: [] });
  });
});
