/**
 * The shipper's pure parts, in the test process: when a file is complete (SettleTracker), what is a segment
 * file and what is its name (identityOf, listSegments), and the in-place stager's refusal of a file that
 * changed while it was read. test/ship.test.ts runs `ship` in child processes, out of the mutation run's
 * reach: written for the survivors of the run `ship` (docs/MUTATION.md).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocationError } from '../src/core/errors.ts';
import { identityOf, listSegments, segmentName, type SegmentFile } from '../src/ship/layout.ts';
import { SettleTracker } from '../src/ship/settle.ts';
import { InPlaceStager } from '../src/ship/stage.ts';

describe('SettleTracker', () => {
  const tracker = (settleMs: number) => {
    let now = 10_000;
    const t = new SettleTracker(settleMs, () => now);
    return { t, at: (ms: number) => (now = ms) };
  };
  const file = (size: number, mtimeMs: number, path = '/d/ds/seg') => ({ path, size, mtimeMs });

  it('a file whose mtime is already settleMs old when first seen is complete at once; a younger one is watched', () => {
    const { t } = tracker(1_000);
    expect(t.isComplete(file(5, 9_000))).toBe(true); // exactly settleMs old
    expect(t.waiting).toBe(0);
    expect(t.isComplete(file(5, 9_001, '/d/ds/young'))).toBe(false);
    expect(t.waiting).toBe(1);
  });

  it('a watched file is complete once unchanged for settleMs since it was last seen changing', () => {
    const { t, at } = tracker(1_000);
    expect(t.isComplete(file(5, 9_500))).toBe(false);
    at(10_999);
    expect(t.isComplete(file(5, 9_500))).toBe(false);
    at(11_000);
    expect(t.isComplete(file(5, 9_500))).toBe(true); // exactly settleMs after it was first seen
  });

  it('a change of size, or of mtime alone, starts the wait again', () => {
    const { t, at } = tracker(1_000);
    t.isComplete(file(5, 9_500));
    at(10_800);
    expect(t.isComplete(file(6, 9_500))).toBe(false); // grew
    at(11_500);
    expect(t.isComplete(file(6, 9_500))).toBe(false); // 700 ms since the change
    expect(t.isComplete(file(6, 9_600))).toBe(false); // touched, same size
    at(12_499);
    expect(t.isComplete(file(6, 9_600))).toBe(false);
    at(12_500);
    expect(t.isComplete(file(6, 9_600))).toBe(true);
  });

  it('retain forgets every file but those named', () => {
    const { t } = tracker(1_000);
    t.isComplete(file(1, 9_900, '/a'));
    t.isComplete(file(1, 9_900, '/b'));
    t.isComplete(file(1, 9_900, '/c'));
    t.retain(new Set(['/b']));
    expect(t.waiting).toBe(1);
    // /a is new again: watched from now on rather than complete.
    expect(t.isComplete(file(1, 9_900, '/a'))).toBe(false);
    expect(t.waiting).toBe(2);
  });
});

describe('identityOf', () => {
  const root = '/srv/segments';

  it('names DIR/<dataspace>/<segmentId>, or DIR/<segmentId> with --dataspace', () => {
    expect(identityOf({ root }, `${root}/logs/seg-1`)).toEqual({ dataspace: 'logs', segmentId: 'seg-1' });
    expect(identityOf({ root, dataspace: 'metrics' }, `${root}/seg-2`)).toEqual({ dataspace: 'metrics', segmentId: 'seg-2' });
    expect(segmentName({ dataspace: 'logs', segmentId: 'seg-1' })).toBe('logs/seg-1');
  });

  it.each([
    ['a file directly in DIR', {}, `${root}/seg-1`],
    ['a file one level too deep', {}, `${root}/logs/x/seg-1`],
    ['a file outside DIR', {}, '/srv/other/seg-1'],
    ['a file in the parent of DIR, at the right depth', {}, '/srv/seg-1'],
    ['the parent of DIR with --dataspace', { dataspace: 'logs' }, '/srv'],
    ['a file of a sibling directory at the right depth', {}, '/srv/segments-old/seg-1'],
    ['a dataspace directory with --dataspace', { dataspace: 'logs' }, `${root}/logs/seg-1`],
    ['a file above DIR with --dataspace', { dataspace: 'logs' }, '/srv/seg-1'],
  ])('refuses %s, naming the form expected', (_, extra, path) => {
    const layout = { root, ...extra };
    const form = 'dataspace' in extra ? `${root}/<segmentId> (dataspace ${extra.dataspace})` : `${root}/<dataspace>/<segmentId>`;
    const err = (() => {
      try {
        identityOf(layout, path);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(LocationError);
    expect((err as Error).message).toBe(`${path} is not a segment file of the form ${form}`);
  });

  it('refuses a name that is not an identifier, saying why', () => {
    expect(() => identityOf({ root }, `${root}/logs/.seg-1.tmp`)).toThrow(new RegExp(`^${root}/logs/\\.seg-1\\.tmp is not a segment file of the form ${root}/<dataspace>/<segmentId>: the name .+`));
    expect(() => identityOf({ root }, `${root}/bad ds/seg-1`)).toThrow(/: the name /);
  });
});

describe('listSegments', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bks-ship-unit-'));
    await mkdir(join(dir, 'logs', 'nested'), { recursive: true });
    await mkdir(join(dir, 'metrics'));
    await mkdir(join(dir, '.hidden'));
    await writeFile(join(dir, 'logs', 'seg-b'), 'bb');
    await writeFile(join(dir, 'logs', 'seg-a'), 'a');
    await writeFile(join(dir, 'logs', '.seg-c.tmp'), 'c');
    await writeFile(join(dir, 'logs', 'with space'), 'd');
    await writeFile(join(dir, '.hidden', 'seg-h'), 'h');
    await writeFile(join(dir, 'metrics', 'seg-m'), 'mmm');
    await writeFile(join(dir, 'stray-file'), 'not a dataspace');
    await symlink(join(dir, 'logs', 'seg-a'), join(dir, 'logs', 'seg-link'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('finds the regular files with identifier names, one level down, sorted, with size and mtime', async () => {
    const found = await listSegments({ root: dir });
    expect(found.map((f) => [f.relative, f.identity.dataspace, f.identity.segmentId, f.size])).toEqual([
      ['logs/seg-a', 'logs', 'seg-a', 1],
      ['logs/seg-b', 'logs', 'seg-b', 2],
      ['metrics/seg-m', 'metrics', 'seg-m', 3],
    ]);
    expect(found[0]?.path).toBe(join(dir, 'logs', 'seg-a'));
    expect(found[0]?.mtimeMs).toBe((await stat(join(dir, 'logs', 'seg-a'))).mtimeMs);
  });

  it('with --dataspace, takes the files directly in DIR', async () => {
    const found = await listSegments({ root: join(dir, 'logs'), dataspace: 'logs' });
    expect(found.map((f) => [f.relative, f.identity.dataspace, f.identity.segmentId])).toEqual([
      ['seg-a', 'logs', 'seg-a'],
      ['seg-b', 'logs', 'seg-b'],
    ]);
  });

  it('a missing directory has no segments; one that cannot be listed is a LocationError', async () => {
    expect(await listSegments({ root: join(dir, 'absent') })).toEqual([]);
    const err = await listSegments({ root: join(dir, 'stray-file'), dataspace: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LocationError);
    expect((err as Error).message).toMatch(new RegExp(`^${join(dir, 'stray-file')} cannot be listed \\(ENOTDIR`));
    expect((err as { cause?: unknown }).cause).toBeInstanceOf(Error);
  });
});

describe('InPlaceStager', () => {
  let dir: string;
  let segment: SegmentFile;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bks-ship-stage-'));
    await mkdir(join(dir, 'logs'));
    const path = join(dir, 'logs', 'seg-1');
    await writeFile(path, 'segment bytes');
    const info = await stat(path);
    segment = { identity: { dataspace: 'logs', segmentId: 'seg-1' }, path, relative: 'logs/seg-1', size: info.size, mtimeMs: info.mtimeMs };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('announces the file under the source root with the size and SHA-256 of one read, reporting progress', async () => {
    const stager = new InPlaceStager('/mnt/segments');
    expect(stager.describe).toBe('in place, announced under /mnt/segments');
    const progress: number[] = [];
    expect(await stager.stage(segment, { onProgress: (n) => progress.push(n) })).toEqual({
      source: 'file:///mnt/segments/logs/seg-1',
      size: 13,
      sha256: createHash('sha256').update('segment bytes').digest('hex'),
    });
    expect(progress).toEqual([13]);
  });

  it.each([
    ['another size', { size: 12 }],
    ['another mtime', { mtimeMs: 1 }],
  ])('refuses a file listed with %s than it has when read', async (_, listed) => {
    const err = await new InPlaceStager('/mnt/segments').stage({ ...segment, ...listed }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LocationError);
    expect((err as Error).message).toBe(`${segment.path} changed while it was staged (${'size' in listed ? listed.size : 13} → 13 bytes); it is staged again once it has settled`);
  });

  it('refuses a file that vanished', async () => {
    const gone = { ...segment, path: join(dir, 'logs', 'gone') };
    await expect(new InPlaceStager('/mnt/segments').stage(gone)).rejects.toThrow(/no such file|ENOENT|vanished/);
  });
});
