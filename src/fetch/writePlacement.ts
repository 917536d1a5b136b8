/**
 * Which thread writes a restore's file. On a local file system a write only copies into the page cache, so the
 * restore writes on its own thread, where the bytes it has just deciphered are still in the core's cache
 * (fileWriter.ts). On any other file system (EFS and NFS, FUSE, one this list does not know) a write may wait
 * for the network or the server's throttling; made on the main thread, that wait would stop the function
 * itself, its deadline timer and its abort included. There the writes go to libuv's pool, as fs.WriteStream's do.
 */
import { writevSync } from 'node:fs';
import { statfs as statfsPromise, type FileHandle } from 'node:fs/promises';

/** The file a restore writes: its descriptor, and its handle's own writev (a pool write the handle tracks). */
export type WritableFile = Pick<FileHandle, 'fd' | 'writev'>;

/** Writes `buffers` at `position` of `file`; the bytes written (a short write is not an error). */
export type WritevAt = (file: WritableFile, buffers: readonly Buffer[], position: number) => number | Promise<number>;

/** On the calling thread: the write returns once the kernel copied the bytes. */
export const writeOnThisThread: WritevAt = (file, buffers, position) => writevSync(file.fd, buffers, position);

/**
 * On libuv's pool, through the FileHandle: its close() waits for this write, so a restore that fails or is
 * stopped mid-write never closes the descriptor under a write still queued (which could then land in whatever
 * file or socket reused the number).
 */
export const writeOnPool: WritevAt = async (file, buffers, position) => (await file.writev(buffers, position)).bytesWritten;

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

/** The writes for a file in directory `path`: this thread on a known local file system, else the pool (also
 *  when statfs fails). */
export async function writePlacementFor(path: string, statfs: (path: string) => Promise<{ type: number }> = statfsPromise): Promise<WritevAt> {
  try {
    const { type } = await statfs(path);
    return LOCAL_FILE_SYSTEMS.has(type) ? writeOnThisThread : writeOnPool;
  } catch {
    return writeOnPool;
  }
}
