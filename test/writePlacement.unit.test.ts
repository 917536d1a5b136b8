/**
 * Which thread writes a restore's file (src/fetch/writePlacement.ts): this thread only on a file system known to
 * be local, the pool on any other (EFS/NFS, FUSE, an unknown type) and when statfs fails.
 */
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { LOCAL_FILE_SYSTEMS, writeOnPool, writeOnThisThread, writePlacementFor } from '../src/fetch/writePlacement.ts';

const typed = (type: number) => async () => ({ type });

describe('writePlacementFor', () => {
  it.each([
    [0xef53, 'ext2/3/4'],
    [0x58465342, 'xfs'],
    [0x01021994, 'tmpfs'],
    [0x794c7630, 'overlayfs'],
  ])('a local file system (0x%s) is written on this thread', async (type, name) => {
    expect(await writePlacementFor('/d', typed(type))).toEqual({ writev: writeOnThisThread, fileSystem: name, thread: 'main' });
  });

  it.each([
    [0x6969, '0x6969'], // NFS: EFS
    [0x65735546, '0x65735546'], // FUSE
    [0x12345678, '0x12345678'],
  ])('any other (%s) is written on the pool', async (type, name) => {
    expect(await writePlacementFor('/d', typed(type))).toEqual({ writev: writeOnPool, fileSystem: name, thread: 'pool' });
  });

  it('a statfs that fails means the pool', async () => {
    const placement = await writePlacementFor('/d', async () => Promise.reject(Object.assign(new Error('ENOSYS'), { code: 'ENOSYS' })));
    expect(placement).toEqual({ writev: writeOnPool, fileSystem: 'unknown (statfs failed)', thread: 'pool' });
  });

  it("asks statfs about the path it is given, and by default this machine's own", async () => {
    const asked: string[] = [];
    await writePlacementFor('/some/dir', async (p) => (asked.push(p), { type: 0xef53 }));
    expect(asked).toEqual(['/some/dir']);
    const here = await writePlacementFor(tmpdir());
    expect(here.thread).toBe(LOCAL_FILE_SYSTEMS.has((await statfs(tmpdir())).type) ? 'main' : 'pool');
  });
});
