/**
 * The temporary files of file:// restores (written beside the destination, renamed over it once whole) and the
 * sweep of those that killed restores left behind (SIGKILL, a Lambda timeout: no code of the dead process runs
 * to remove them).
 *
 *   .<destination name, first 32 characters>.<host id>-<pid>-<12 hex>.bks-restoring
 *   (host id: 8 hex of SHA-256(hostname); names of earlier versions, without <host id>-<pid>-, are recognised)
 *
 * Before a restore writes, it removes from the destination's directory the temporaries whose writer is gone:
 * written on this host by a process that no longer runs (at once), or untouched for longer than the functions'
 * timeout (any host: a live restore writes continuously, so its file's mtime stays fresh). Only regular files
 * named exactly so are touched, and only in the destination's directory, already confined to the restore root.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readdir, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { logger } from '../core/logger.ts';

const HOST_ID = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
const TEMPORARY_NAME = /^\..{0,32}\.(?:([0-9a-f]{8})-(\d+)-)?[0-9a-f]{12}\.bks-restoring$/su;

/** A fresh temporary name for destination `name`, bounded whatever its length (a 250-character name fits). */
export function temporaryName(name: string): string {
  return `.${[...name].slice(0, 32).join('')}.${HOST_ID}-${process.pid}-${randomBytes(6).toString('hex')}.bks-restoring`;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return err instanceof Error && 'code' in err && err.code === 'EPERM';
  }
}

/** Whether the temporary `name` (mtime `mtimeMs`) was abandoned by its writer. */
function abandoned(name: string, mtimeMs: number, maxIdleMs: number, now: number): boolean {
  const m = TEMPORARY_NAME.exec(name);
  if (!m) return false;
  const pid = Number(m[2]);
  if (m[1] === HOST_ID && pid !== process.pid && !processAlive(pid)) return true;
  return now - mtimeMs > maxIdleMs;
}

/**
 * Removes the abandoned temporaries of a directory; `entry` names a file in it (a confined directory's path
 * helper). Resolves to how many. Never throws: a sweep is best effort.
 */
export async function removeAbandonedTemporaries(entry: (name: string) => string, maxIdleMs: number, now: number = Date.now()): Promise<number> {
  let removed = 0;
  const names = await readdir(entry('')).catch(() => [] as string[]);
  for (const name of names.filter((n) => TEMPORARY_NAME.test(n))) {
    const info = await lstat(entry(name)).catch(() => undefined);
    if (!info?.isFile() || !abandoned(name, info.mtimeMs, maxIdleMs, now)) continue;
    if (await unlink(entry(name)).then(() => true, () => false)) removed++;
  }
  if (removed > 0) logger.info('removed temporary files of restores that were killed', { directory: entry(''), removed });
  return removed;
}
