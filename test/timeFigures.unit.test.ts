import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { timeFigures } from '../bench/support/measure.ts';

describe("the benches read a client's CPU, peak RSS and page faults from /usr/bin/time", () => {
  it('takes the last line, after what the client wrote to the same file', () => {
    expect(timeFigures('Command exited with non-zero status 1\n1.25 0.50 143360 31538\n')).toEqual({ userS: 1.25, sysS: 0.5, maxRssKiB: 143360, minorFaults: 31538 });
  });

  it('refuses output without the four figures (the format of before, without %R)', () => {
    expect(timeFigures('1.25 0.50 143360\n')).toBeUndefined();
    expect(timeFigures('')).toBeUndefined();
  });

  it("counts the faults of a process that touches fresh memory: one per 4 KiB page, at least", () => {
    // 32 MiB filled once: 8,192 pages of 4 KiB. Huge pages would take 16 faults of 2 MiB: only where the kernel
    // gives them unasked ("[always]"), since GLIBC_TUNABLES (which could ask for them) is cleared.
    const thpAlways = /\[always\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES;
    const run = (code: string) => spawnSync('/usr/bin/time', ['-f', '%U %S %M %R', process.execPath, '-e', code], { env, encoding: 'utf8' });
    const idle = timeFigures(run('0').stderr);
    const touching = timeFigures(run('Buffer.allocUnsafe(32 * 2 ** 20).fill(1)').stderr);
    expect(idle).toBeDefined();
    expect(touching).toBeDefined();
    expect(touching!.minorFaults - idle!.minorFaults).toBeGreaterThanOrEqual(thpAlways ? 16 : 0.9 * 8192);
  });
});
