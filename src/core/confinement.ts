/**
 * Files confined to a root directory (S3_STORAGE_SOURCE_ROOT, S3_STORAGE_RESTORE_ROOT), without a
 * check-then-use race. A path is resolved and checked first only to give a clear error early; what decides is
 * the file actually opened:
 *
 *   read   open the resolved path with O_NOFOLLOW (a final symlink swapped in is refused), then check what the
 *          descriptor refers to (fstat: a regular file; /proc/self/fd/N: a path inside the real root, naming
 *          the same inode), then read only through that descriptor.
 *   write  open the destination's directory (O_DIRECTORY|O_NOFOLLOW) and check that descriptor the same way;
 *          every later step names files through `/proc/self/fd/<dir fd>/<name>`, which stays on that directory
 *          whatever is renamed or swapped above it: the temporary file is created there with
 *          O_CREAT|O_EXCL|O_NOFOLLOW and renamed within it.
 *
 * Without /proc (not Linux) the descriptor is checked against the resolved path instead (same inode), and
 * directory entries are named by the resolved path: confinement is then checked, not pinned.
 */
import { constants, existsSync } from 'node:fs';
import { lstat, open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { LocationError, PathOutsideRootError, describeValue } from './errors.ts';

/** Longest file name (one path component) Linux file systems accept, in bytes. */
export const MAX_NAME_BYTES = 255;

/** True when `path` is `root` or below it (`..backup` is a name inside, not a way out). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

export interface Root {
  /** The root as configured (for messages). */
  readonly configured: string;
  /** Its real path (symlinks resolved). */
  readonly real: string;
  /** The variable that configures it (for messages). */
  readonly variable: string;
}

/** The real root, or PathOutsideRootError when the variable is unset, LocationError when it does not exist. */
export async function realRoot(root: string | undefined, variable: string, path: string): Promise<Root> {
  if (root === undefined) throw new PathOutsideRootError(path, variable, undefined);
  try {
    return { configured: root, real: await realpath(root), variable };
  } catch (err) {
    throw new LocationError(root, `${variable} ${root} does not exist or cannot be read (${errnoCode(err)})`, { cause: err });
  }
}

function outside(path: string, root: Root): PathOutsideRootError {
  return new PathOutsideRootError(path, root.variable, root.configured);
}

/** Refuses a final path component longer than the file system allows, with a message that says so. */
function checkNameLength(path: string): void {
  const bytes = Buffer.byteLength(basename(path));
  if (bytes > MAX_NAME_BYTES) {
    throw new LocationError(path, `${describeValue(path)}: its file name is ${bytes} bytes long; file systems allow at most ${MAX_NAME_BYTES}`);
  }
}

/** The real path of an existing file inside `root` (symlinks resolved); refuses anything outside. A pre-check. */
export async function resolveExistingInsideRoot(path: string, root: string | undefined, rootVariable: string): Promise<string> {
  const r = await realRoot(root, rootVariable, path);
  return resolveExisting(path, r);
}

async function resolveExisting(path: string, root: Root): Promise<string> {
  checkNameLength(path);
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if (!isInside(root.real, path)) throw outside(path, root);
    throw new LocationError(path, `${describeValue(path)} does not exist or cannot be read (${errnoCode(err)})`, { cause: err });
  }
  if (!isInside(root.real, real)) throw outside(path, root);
  return real;
}

/** The real path a new file at `path` would have inside `root` (its directory must exist); refuses outside. A pre-check. */
export async function resolveNewInsideRoot(path: string, root: string | undefined, rootVariable: string): Promise<string> {
  const r = await realRoot(root, rootVariable, path);
  return (await resolveNew(path, r)).target;
}

async function resolveNew(path: string, root: Root): Promise<{ dir: string; name: string; target: string }> {
  checkNameLength(path);
  const name = basename(path);
  // A directory is refused at once (before any byte is fetched): the root itself, or any directory inside it.
  const existing = await stat(path).catch(() => undefined);
  if (path.endsWith(sep) || name === '' || name === '.' || name === '..' || existing?.isDirectory() === true) {
    const real = await realpath(path).catch(() => path);
    if (!isInside(root.real, real)) throw outside(path, root);
    const which = real === root.real ? `${root.variable} itself, a directory` : 'a directory';
    throw new LocationError(path, `${describeValue(path)} is ${which}; give the path of a file inside ${root.variable} to restore to`);
  }
  let dir: string;
  try {
    dir = await realpath(dirname(path));
  } catch (err) {
    if (!isInside(root.real, path)) throw outside(path, root);
    throw new LocationError(path, `the directory of ${describeValue(path)} does not exist or cannot be read (${errnoCode(err)})`, { cause: err });
  }
  const target = join(dir, name);
  if (!isInside(root.real, dir) || !isInside(root.real, target)) throw outside(path, root);
  // An existing destination that is a symlink must not lead outside either (it is replaced, never followed).
  const link = await lstat(target).catch(() => undefined);
  if (link?.isSymbolicLink()) {
    const to = await realpath(target).catch(() => undefined);
    if (to !== undefined && !isInside(root.real, to)) throw outside(path, root);
  }
  return { dir, name, target };
}

/** Linux: open descriptors are visible (and usable as directories) under /proc/self/fd. */
const HAS_PROC_FD = existsSync('/proc/self/fd');

/**
 * The path the open descriptor `handle` refers to, confirmed to name the same inode; undefined when it cannot
 * be confirmed (the file was moved or removed meanwhile). `fallback` is used where /proc is not available.
 */
async function descriptorPath(handle: FileHandle, fallback: string): Promise<string | undefined> {
  const [own, where] = await Promise.all([handle.stat(), HAS_PROC_FD ? readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined) : realpath(fallback).catch(() => undefined)]);
  if (where === undefined) return undefined;
  const named = await stat(where).catch(() => undefined);
  return named !== undefined && named.dev === own.dev && named.ino === own.ino ? where : undefined;
}

/** A regular file inside a root, opened once; read it only through `handle` (positional reads). */
export interface ConfinedFile {
  readonly handle: FileHandle;
  /** Where the descriptor was, inside the root, when it was checked. */
  readonly path: string;
  readonly size: number;
}

/**
 * Opens the existing regular file `path` for reading, confined to `root`: the descriptor itself is checked.
 * PathOutsideRootError when it is (or was swapped to be) outside; LocationError when it is missing, not a
 * regular file, or was replaced by a symlink while it was opened.
 */
export async function openFileInsideRoot(path: string, root: string | undefined, rootVariable: string): Promise<ConfinedFile> {
  const r = await realRoot(root, rootVariable, path);
  const real = await resolveExisting(path, r);
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in must not hang the open; it is refused below as not a regular file.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (errnoCode(err) === 'ELOOP') throw new LocationError(path, `${describeValue(path)} was replaced by a symlink while it was opened; refused`, { cause: err });
    throw new LocationError(path, `${describeValue(path)} cannot be opened (${errnoCode(err)})`, { cause: err });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new LocationError(path, `${describeValue(path)} is not a regular file`);
    const where = await descriptorPath(handle, real);
    if (where === undefined || !isInside(r.real, where)) throw outside(path, r);
    return { handle, path: where, size: info.size };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

/** A directory inside a root, held open: its entries are named through the descriptor, so they cannot move. */
export class ConfinedDirectory {
  private constructor(
    private readonly handle: FileHandle,
    /** The directory's real path when it was opened (for messages, and where /proc is missing). */
    readonly path: string,
    private readonly root: Root,
    private readonly forPath: string,
  ) {}

  /**
   * Prepares a new file at `path` inside `root`: refuses a directory (the root itself included), a path outside,
   * a missing directory, and opens and checks the directory. Nothing is created yet.
   */
  static async forNewFile(path: string, root: string | undefined, rootVariable: string): Promise<{ dir: ConfinedDirectory; name: string }> {
    const r = await realRoot(root, rootVariable, path);
    const { dir, name } = await resolveNew(path, r);
    let handle: FileHandle;
    try {
      handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (err) {
      // ELOOP: the directory was swapped for a symlink after it was resolved.
      if (errnoCode(err) === 'ELOOP') throw outside(path, r);
      const why = errnoCode(err) === 'ENOTDIR' ? 'is not a directory' : `cannot be opened (${errnoCode(err)})`;
      throw new LocationError(path, `the directory of ${describeValue(path)} ${why}`, { cause: err });
    }
    const confined = new ConfinedDirectory(handle, dir, r, path);
    try {
      await confined.check();
    } catch (err) {
      await confined.close();
      throw err;
    }
    return { dir: confined, name };
  }

  /** The path of entry `name` of this directory, through its descriptor (it cannot be swapped). */
  entry(name: string): string {
    return HAS_PROC_FD ? `/proc/self/fd/${this.handle.fd}/${name}` : join(this.path, name);
  }

  /** Throws PathOutsideRootError unless the directory (as it is now) is inside the root. */
  async check(): Promise<void> {
    const where = await descriptorPath(this.handle, this.path);
    if (where === undefined || !isInside(this.root.real, where)) throw outside(this.forPath, this.root);
  }

  /** Throws PathOutsideRootError unless the open file `file` is inside the root. */
  async checkFile(file: FileHandle, name: string): Promise<void> {
    const where = await descriptorPath(file, join(this.path, name));
    if (where === undefined || !isInside(this.root.real, where)) throw outside(this.forPath, this.root);
  }

  /** Makes renames in the directory durable (best effort where the platform does not allow it). */
  async sync(): Promise<void> {
    await this.handle.sync().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

export function errnoCode(err: unknown): string {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : 'error';
}
