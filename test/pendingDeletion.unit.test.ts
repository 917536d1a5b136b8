/**
 * An upload announcement cancels its segment's pending deletion (src/upload/pendingDeletion.ts), with the mark
 * rewrite (cancelDeletion) replaced: the count answered, the index updated, and the warn line only when a mark
 * really changed. Written for the survivors of the mutation run `upload` (notes: mut-upload.md).
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DeletionMarks, PendingDeletionsIndex } from '../src/core/deletionMarks/index.ts';
import type { ReadMark } from '../src/core/deletionMarks/markStore.ts';
import { logger } from '../src/core/logger.ts';
import { cancelPendingDeletion } from '../src/upload/pendingDeletion.ts';
import { capturedOutput } from './support/capturedOutput.ts';

const { cancelDeletion } = vi.hoisted(() => ({ cancelDeletion: vi.fn<(marks: unknown, candidates: readonly ReadMark[]) => Promise<ReadMark[]>>() }));
vi.mock('../src/core/deletionMarks/index.ts', () => ({ cancelDeletion }));

// The warn line is asserted: whatever LOG_LEVEL the run has, this file logs at INFO (a fresh module per file).
beforeAll(() => logger.setLogLevel('INFO'));
afterEach(() => {
  cancelDeletion.mockReset();
});

const IDENTITY = { dataspace: 'ds', segmentId: 'seg-1' };
// Only the key is read here; the document is cancelDeletion's business (replaced).
const mark = (key: string) => ({ key, etag: `"${key}"`, doc: {} }) as unknown as ReadMark;

function runtime(holding: readonly ReadMark[]) {
  const updated: string[] = [];
  const pendingDeletions = { marksHolding: async () => [...holding], update: (m: ReadMark) => void updated.push(m.key) } as unknown as PendingDeletionsIndex;
  return { rt: { deletions: {} as DeletionMarks, pendingDeletions }, updated };
}

async function warnings(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  return (await capturedOutput(run))
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"level"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('cancelPendingDeletion', () => {
  it('answers the marks changed, updates the index with them and warns naming them', async () => {
    const marks = [mark('marks/1'), mark('marks/2')];
    cancelDeletion.mockResolvedValue(marks);
    const { rt, updated } = runtime(marks);
    let count: number | undefined;
    const lines = await warnings(async () => {
      count = await cancelPendingDeletion(rt, IDENTITY, 'seg 1');
    });
    expect(count).toBe(2);
    expect(updated).toEqual(['marks/1', 'marks/2']);
    expect(lines).toEqual([expect.objectContaining({ level: 'WARN', message: 'an upload announcement cancelled the pending deletion of its segment', segment: 'seg 1', marks: ['marks/1', 'marks/2'] })]);
  });

  it('a stale index (the mark no longer lists the segment): nothing changed, no warning', async () => {
    cancelDeletion.mockResolvedValue([]);
    const { rt, updated } = runtime([mark('marks/1')]);
    let count: number | undefined;
    const lines = await warnings(async () => {
      count = await cancelPendingDeletion(rt, IDENTITY, 'seg 1');
    });
    expect(count).toBe(0);
    expect(cancelDeletion).toHaveBeenCalledTimes(1);
    expect(updated).toEqual([]);
    expect(lines).toEqual([]);
  });
});
