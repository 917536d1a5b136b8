import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuPinning } from '../bench/support/cpuPinning.ts';

describe('the peers bench pins its clients to BENCH_CLIENT_CPUS and everything else to the other cores', () => {
  it('is off when the variable is unset or empty', () => {
    expect(cpuPinning(undefined, 4)).toBeUndefined();
    expect(cpuPinning(' ', 4)).toBeUndefined();
  });

  it("reads taskset's list format and gives the servers the cores left", () => {
    const p = cpuPinning('0', 4);
    expect(p?.client).toEqual([0]);
    expect(p?.rest).toEqual([1, 2, 3]);
    expect(cpuPinning('2-3,0', 4)?.client).toEqual([0, 2, 3]);
    expect(cpuPinning('2-3,0', 4)?.rest).toEqual([1]);
    expect(p?.wrap('aws', ['s3', 'cp'])).toEqual(['taskset', ['-c', '0', 'aws', 's3', 'cp']]);
  });

  it('refuses a list that is not one, a backward range, a missing core, or one that leaves the servers none', () => {
    expect(() => cpuPinning('one', 2)).toThrow(/"one" is not a core number/);
    expect(() => cpuPinning('0,5', 2)).toThrow(/cores 0-1, not 5/);
    expect(() => cpuPinning('0-1', 2)).toThrow(/leaves no core for the servers/);
    expect(() => cpuPinning('3-1', 4)).toThrow(/"3-1" runs backwards \(write 1-3\)/);
  });

  // Needs two cores, which every machine of this project has (CI included); a one-core machine cannot pin apart.
  it('runs a client on its core only and moves a running process off it', async () => {
    const p = cpuPinning('0', 2);
    if (p === undefined) throw new Error('unreachable');
    const [cmd, args] = p.wrap(process.execPath, ['-e', 'console.log(require("node:os").availableParallelism())']);
    expect(execFileSync(cmd, args, { encoding: 'utf8' }).trim()).toBe('1');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      p.pinToRest(child.pid ?? 0);
      const allowed = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
      expect(allowed).toBe('1');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
