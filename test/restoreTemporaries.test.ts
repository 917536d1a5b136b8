/**
 * The temporary files of file:// restores: what a killed restore left in the destination's directory is removed
 * by the next restore there (a dead writer on this host at once; any writer's file idle longer than the
 * functions' timeout), and nothing else is touched: live writers' files, fresh ones, symlinks, other names.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeAbandonedTemporaries, temporaryName } from '../src/fetch/restoreTemporaries.ts';

let dir: string;
const entry = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bks-temporaries-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('restore temporaries', () => {
  it("removes a dead local writer's file and an idle one; keeps live, fresh, unrelated files and links", async () => {
    const host = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const name = (h: string, pid: number, hex = 'a1b2c3d4e5f6') => `.seg-1.${h}-${pid}-${hex}.bks-restoring`;
    const files = {
      deadHere: name(host, dead),
      otherDestinationDeadHere: `.seg-10.${host}-${dead}-a1b2c3d4e5f6.bks-restoring`,
      mine: temporaryName('seg-1'),
      otherHostFresh: name('0badc0de', 4242),
      otherHostIdle: name('0badc0de', 4243, 'bbbbbbbbbbbb'),
      olderNamingFresh: '.seg-1.0123456789ab.bks-restoring',
      unrelated: '.seg-1.notes',
    };
    for (const f of Object.values(files)) await writeFile(join(dir, f), 'partial');
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(dir, files.otherHostIdle), old, old);
    const link = name(host, dead, 'cccccccccccc');
    await symlink('/etc/hostname', join(dir, link));

    expect(await removeAbandonedTemporaries(entry, 900_000)).toBe(3);
    const left = await readdir(dir);
    for (const gone of [files.deadHere, files.otherDestinationDeadHere, files.otherHostIdle]) expect(left).not.toContain(gone);
    for (const kept of [files.mine, files.otherHostFresh, files.olderNamingFresh, files.unrelated, link]) expect(left).toContain(kept);
  });

  it('a missing directory is no error', async () => {
    expect(await removeAbandonedTemporaries((n) => join(dir, 'missing', n), 1000)).toBe(0);
  });
});
