import { describe, expect, it } from 'vitest';
import { processCpuSeconds, statTicks } from '../bench/support/processCpu.ts';

describe('the peers bench reads a server process CPU time from /proc/<pid>/stat', () => {
  it('adds utime and stime, counting fields after the last parenthesis of the command name', () => {
    // A command name with spaces and parentheses, as /proc shows it; utime 1234 and stime 567 are fields 14 and 15.
    const line = '4242 (node (s3rver) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 1234 567 0 0 20 0 11 0 1000 1000000 5000 18446744073709551615';
    expect(statTicks(line)).toBe(1234 + 567);
  });

  it('refuses a line without the fields', () => {
    expect(() => statTicks('no parenthesis here')).toThrow(/not a \/proc/);
    expect(() => statTicks('1 (x) S 1 2')).toThrow(/no utime\/stime/);
  });

  it('counts this process CPU and grows with work; an absent process reads as undefined', () => {
    const before = processCpuSeconds(process.pid);
    expect(before).toBeGreaterThan(0);
    // Spin until node itself counts 0.2 s more CPU (bounded by a wall-clock limit on a crowded machine).
    const start = process.cpuUsage();
    const limit = Date.now() + 30_000;
    while (Date.now() < limit) {
      const used = process.cpuUsage(start);
      if (used.user + used.system >= 200_000) break;
    }
    expect((processCpuSeconds(process.pid) ?? 0) - (before ?? 0)).toBeGreaterThanOrEqual(0.1);
    expect(processCpuSeconds(undefined)).toBeUndefined();
    expect(processCpuSeconds(2 ** 22 + 1)).toBeUndefined();
  });
});
