// The test set of `npm run test:mutation` (StrykerJS, stryker.config.mjs): the unit and integration tests that
// run in the test process on the embedded server and moto_server. Left out: tests whose code under test runs
// only in child processes (the CLI, the demo; Stryker's per-test coverage cannot see into them), the packaging
// test (osls), and the chaos suite. Fuzzing runs a bounded number of cases per mutant.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: process.env.MUTATION_TESTS ? process.env.MUTATION_TESTS.split(',') : ['test/**/*.test.ts'],
    exclude: ['test/cli.test.ts', 'test/demo.test.ts', 'test/uploadEvents.test.ts', 'test/stack.test.ts', 'test/chaos/**'],
    testTimeout: 600_000,
    hookTimeout: 180_000,
    // As in vitest.config.ts: the role of the functions under test, for the default credential chain.
    env: { FUZZ_RUNS: '300', AWS_ACCESS_KEY_ID: 'test-role', AWS_SECRET_ACCESS_KEY: 'test-role' },
  },
});
