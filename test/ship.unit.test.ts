/**
 * The shipper's parts, in the test process: when a file is complete (SettleTracker), what is a segment file
 * and what is its name (identityOf, listSegments), the in-place stager's refusal of a file that changed while
 * it was read, and the state file and its lock (ShipState, lockState). test/ship.test.ts runs `ship` in child processes, out of the mutation run's
 * reach: written for the survivors of the run `ship` (docs/MUTATION.md).
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocationError, ShipStateError } from '../src/core/errors.ts';
import { identityOf, listSegments, segmentName, type SegmentFile } from '../src/ship/layout.ts';
import { SettleTracker } from '../src/ship/settle.ts';
import { lockState, ShipState } from '../src/ship/shipState.ts';
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

describe('ShipState', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bks-ship-state-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const entry = (n: number) => ({ size: n, sha256: createHash('sha256').update(String(n)).digest('hex'), at: `2026-11-30T00:00:0${n}.000Z` });
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as Error & { cause?: unknown });

  it('starts empty, and saves atomically what it loads again: one JSON line, mode 0600, no temporary file left', async () => {
    const path = join(dir, 'state.json');
    const state = await ShipState.load(path);
    expect(state.size).toBe(0);
    state.record('logs/seg-1', entry(1));
    state.record('logs/seg-2', entry(2));
    await state.save();
    expect(await readFile(path, 'utf8')).toBe(`${JSON.stringify({ version: 1, shipped: { 'logs/seg-1': entry(1), 'logs/seg-2': entry(2) } })}\n`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const again = await ShipState.load(path);
    expect([again.size, again.has('logs/seg-1'), again.has('logs/seg-2'), again.has('logs/seg-3')]).toEqual([2, true, true, false]);
  });

  it('prune drops the entries of segments no longer present and counts them', async () => {
    const state = await ShipState.load(join(dir, 'absent.json'));
    for (const n of [1, 2, 3]) state.record(`logs/seg-${n}`, entry(n));
    expect(state.prune(new Set(['logs/seg-2', 'logs/other']))).toBe(2);
    expect([state.size, state.has('logs/seg-2'), state.has('logs/seg-1')]).toEqual([1, true, false]);
    expect(state.prune(new Set(['logs/seg-2']))).toBe(0);
  });

  it('a damaged file is an error saying it is never reset, with the parser’s first line and the cause', async () => {
    const path = join(dir, 'damaged.json');
    await writeFile(path, '{"version":1,"shipped":');
    const err = await failure(ShipState.load(path));
    expect(err).toBeInstanceOf(ShipStateError);
    expect(err?.message).toMatch(new RegExp(`^ship state ${path} is damaged \\(Unexpected end of JSON input\\); it is never reset automatically: restore it, or move it aside`));
    expect(err?.cause).toBeInstanceOf(SyntaxError);
    await writeFile(path, JSON.stringify({ version: 1, shipped: { 'logs/seg-1': { size: -1, sha256: 'x', at: '' } } }));
    const invalid = await failure(ShipState.load(path));
    expect(invalid?.message).toMatch(/is damaged \(\[\); it is never reset/); // zod's message: its first line only
  });

  it('a state that cannot be read or written is an error naming it, with the cause; a failed save leaves no temporary file', async () => {
    const unreadable = await failure(ShipState.load(dir)); // a directory
    expect(unreadable).toBeInstanceOf(ShipStateError);
    expect(unreadable?.message).toMatch(new RegExp(`^ship state ${dir} cannot be read \\(EISDIR`));
    expect(unreadable?.cause).toBeInstanceOf(Error);
    const target = join(dir, 'a-directory');
    await mkdir(target);
    const state = await ShipState.load(join(dir, 'absent.json'));
    Object.defineProperty(state, 'path', { value: target }); // rename over a directory fails
    const unwritable = await failure(state.save());
    expect(unwritable).toBeInstanceOf(ShipStateError);
    expect(unwritable?.message).toMatch(new RegExp(`^ship state ${target} cannot be written \\(`));
    expect(unwritable?.cause).toBeInstanceOf(Error);
    expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('lockState', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bks-ship-lock-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('takes the lock with this pid and releases it (twice is harmless)', async () => {
    const state = join(dir, 'a.json');
    const release = await lockState(state);
    expect(await readFile(`${state}.lock`, 'utf8')).toBe(String(process.pid));
    await release();
    await expect(stat(`${state}.lock`)).rejects.toThrow(/ENOENT/);
    await release();
  });

  it('refuses while a live process holds it, naming its pid', async () => {
    const state = join(dir, 'b.json');
    await writeFile(`${state}.lock`, '1\n'); // init: always running
    const err = (await lockState(state).then(() => undefined, (e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ShipStateError);
    expect(err.message).toBe(`another bucket-storage ship (pid 1) uses ${state}; run one shipper per state file`);
    expect(await readFile(`${state}.lock`, 'utf8')).toBe('1\n');
  });

  it.each([
    ['a pid that no longer runs', () => String(spawnSync('true').pid)],
    ['its own pid (a lock this process left)', () => String(process.pid)],
    ['no pid', () => 'garbage'],
    ['pid 0 (which would name our own process group)', () => '0'],
  ])('takes over a lock holding %s', async (_, content) => {
    const state = join(dir, `c-${Math.random().toString(16).slice(2)}.json`);
    await writeFile(`${state}.lock`, content());
    const release = await lockState(state);
    expect(await readFile(`${state}.lock`, 'utf8')).toBe(String(process.pid));
    await release();
  });

  it('a lock that cannot be created, or that keeps coming back, is an error', async () => {
    const missing = join(dir, 'no-such-dir', 'd.json');
    await expect(lockState(missing)).rejects.toThrow(new RegExp(`^lock ${missing}\\.lock cannot be created \\(ENOENT`));
    const state = join(dir, 'e.json');
    await mkdir(`${state}.lock`); // cannot be removed as a file: every attempt finds it again
    await expect(lockState(state)).rejects.toThrow(`lock ${state}.lock keeps coming back; is another shipper starting?`);
  });
});
