// `npm run test:chaos`: the reliability suite (faults, crashes, load, fuzz). CHAOS_SCALE=small is the
// bounded form .ci/run uses; the summary table is printed once all files ran.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts', 'test/fuzz.test.ts'],
    testTimeout: 900_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/chaos/summary.global.ts'],
  },
});
