// `npm run test:chaos`: the reliability suite (faults, crashes, load, fuzz). CHAOS_SCALE=small is the
// bounded form .ci/run uses; the summary table is printed once all files ran.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts', 'test/fuzz.test.ts'],
    // Full scale on two shared cores: the crash scenarios take up to ~15 minutes each.
    testTimeout: 1_800_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The role of the functions under test: SQS, KMS and the state bucket are signed by the default credential
    // chain, which reads process.env as on Lambda (static S3_STORAGE_ACCESSKEY keys sign data buckets only).
    // The local servers accept any key.
    env: { AWS_ACCESS_KEY_ID: 'test-role', AWS_SECRET_ACCESS_KEY: 'test-role' },
    fileParallelism: false,
    globalSetup: ['test/chaos/summary.global.ts'],
  },
});
