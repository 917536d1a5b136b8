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
  it.each([...LOCAL_FILE_SYSTEMS].map(([type, name]) => ({ type, name })))('$name (a local file system) is written on this thread', async ({ type }) => {
    expect(await writePlacementFor('/d', typed(type))).toBe(writeOnThisThread);
  });

  it.each([
    { type: 0x6969, name: 'NFS (EFS)' },
    { type: 0x65735546, name: 'FUSE' },
    { type: 0x12345678, name: 'a type not known' },
  ])('$name is written on the pool', async ({ type }) => {
    expect(await writePlacementFor('/d', typed(type))).toBe(writeOnPool);
  });

  it('a statfs that fails means the pool', async () => {
    expect(await writePlacementFor('/d', async () => Promise.reject(Object.assign(new Error('ENOSYS'), { code: 'ENOSYS' })))).toBe(writeOnPool);
  });

  it('the local types are those of linux/magic.h', () => {
    expect(Object.fromEntries([...LOCAL_FILE_SYSTEMS].map(([type, name]) => [name, type.toString(16)]))).toEqual({
      'ext2/3/4': 'ef53',
      xfs: '58465342',
      btrfs: '9123683e',
      tmpfs: '1021994',
      ramfs: '858458f6',
      overlayfs: '794c7630',
      f2fs: 'f2f52010',
    });
  });

  it("asks statfs about the path it is given, and by default this machine's own", async () => {
    const asked: string[] = [];
    await writePlacementFor('/some/dir', async (p) => (asked.push(p), { type: 0xef53 }));
    expect(asked).toEqual(['/some/dir']);
    const here = await writePlacementFor(tmpdir());
    expect(here).toBe(LOCAL_FILE_SYSTEMS.has((await statfs(tmpdir())).type) ? writeOnThisThread : writeOnPool);
  });
});
