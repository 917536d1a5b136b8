import { describe, expect, it } from 'vitest';
import { BETWEEN_LINE } from '../bench/support/between.ts';
import { measure } from '../bench/support/measure.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A child that prints "before", then BETWEEN_LINE, waits for a line on stdin, then prints "after". */
const CHILD = `
process.stdout.write('before\\n' + ${JSON.stringify(BETWEEN_LINE)} + '\\n');
let seen = '';
process.stdin.on('data', (c) => { seen += c; if (seen.includes('\\n')) { console.log('after'); process.exit(0); } });
process.stdin.on('end', () => { console.log('stdin ended without a line'); process.exit(3); });
`;

describe('the peers bench lets its child wait while it works between two invocations (measure, between)', () => {
  it('runs `between` once, when the child asks, then lets it go on; its time is not in the wall time', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'bks-between-'));
    try {
      const order: string[] = [];
      const started = performance.now();
      const measured = await measure(process.execPath, ['-e', CHILD], { PATH: process.env.PATH ?? '' }, scratch, {
        between: async () => {
          order.push('between');
          await new Promise((resolve) => setTimeout(resolve, 500));
        },
      });
      const outside = (performance.now() - started) / 1000;
      expect(order).toEqual(['between']);
      expect(measured.stdout.split('\n').filter(Boolean)).toEqual(['before', BETWEEN_LINE, 'after']);
      // By construction, not by timing: the wall time is what the parent saw less at least the 0.5 s waited.
      expect(measured.wallS).toBeLessThanOrEqual(outside - 0.5);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it('fails the measurement and stops the child when `between` fails', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'bks-between-'));
    try {
      const run = measure(process.execPath, ['-e', CHILD], { PATH: process.env.PATH ?? '' }, scratch, {
        between: () => Promise.reject(new Error('the cold copy is 3 bytes short')),
      });
      await expect(run).rejects.toThrow('the cold copy is 3 bytes short');
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it('without `between`, the child finds its stdin at its end', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'bks-between-'));
    try {
      await expect(measure(process.execPath, ['-e', CHILD], { PATH: process.env.PATH ?? '' }, scratch)).rejects.toThrow(/exited 3/);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
