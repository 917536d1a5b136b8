/**
 * Which thread writes a restore's file. On a local file system a write only copies into the page cache, so the
 * restore writes on its own thread, where the bytes it has just deciphered are still in the core's cache
 * (fileWriter.ts). On any other file system (EFS and NFS, FUSE, one this list does not know) a write may wait
 * for the network or the server's throttling; made on the main thread, that wait would stop the function
 * itself, its deadline timer and its abort included. There the writes go to libuv's pool, as fs.WriteStream's do.
 */
import { writev, writevSync } from 'node:fs';
import { statfs as statfsPromise } from 'node:fs/promises';

/** Writes `buffers` at `position` of `fd`; the bytes written (a short write is not an error). */
export type WritevAt = (fd: number, buffers: readonly Buffer[], position: number) => number | Promise<number>;

/** On the calling thread: the write returns once the kernel copied the bytes. */
export const writeOnThisThread: WritevAt = (fd, buffers, position) => writevSync(fd, buffers, position);

/** On libuv's pool: the calling thread goes on while the write waits. */
export const writeOnPool: WritevAt = (fd, buffers, position) =>
  new Promise((resolve, reject) => writev(fd, buffers, position, (err, written) => (err ? reject(err) : resolve(written))));

/** statfs(2) magic numbers (linux/magic.h) of file systems whose writes complete in the local page cache. */
export const LOCAL_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext2/3/4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
  [0x794c7630, 'overlayfs'],
  [0xf2f52010, 'f2fs'],
]);

export interface WritePlacement {
  readonly writev: WritevAt;
  /** For the log: the file system's type, and where the writes run. */
  readonly fileSystem: string;
  readonly thread: 'main' | 'pool';
}

/** The writes for a file in directory `path`; the pool when its file system is not a known local one or cannot be told. */
export async function writePlacementFor(path: string, statfs: (path: string) => Promise<{ type: number }> = statfsPromise): Promise<WritePlacement> {
  let type: number;
  try {
    ({ type } = await statfs(path));
  } catch {
    return { writev: writeOnPool, fileSystem: 'unknown (statfs failed)', thread: 'pool' };
  }
  const local = LOCAL_FILE_SYSTEMS.get(type);
  if (local !== undefined) return { writev: writeOnThisThread, fileSystem: local, thread: 'main' };
  return { writev: writeOnPool, fileSystem: `0x${type.toString(16)}`, thread: 'pool' };
}
