// @ts-check
/**
 * Mutation testing (`npm run test:mutation`): StrykerJS mutates src/ and runs, for each mutant, the tests of
 * vitest.mutation.config.ts that cover it. Incremental: results of unchanged code and tests are reused from
 * reports/stryker-incremental.json (not in git). One test process at a time (concurrency 1): the tests start
 * their own servers and the machines have 2 shared cores. Scope one folder with
 * `npm run test:mutation -- --mutate 'src/core/**\/*.ts'`. The HTML report is reports/mutation/index.html.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // src/cli and src/local (the command line and the local servers) run mostly in child processes
  // (bin/bucket-storage.mjs, the demo), out of the reach of per-test coverage; everything else of src/ is mutated.
  mutate: ['src/core/**/*.ts', 'src/upload/**/*.ts', 'src/fetch/**/*.ts', 'src/cleanup/**/*.ts', 'src/ship/**/*.ts', 'src/redrive/**/*.ts', 'src/verify/**/*.ts', 'src/smoke/**/*.ts'],
  ignorePatterns: ['reports', 'dist', '.serverless', '.bench-tmp', '.demo-tmp', 'coverage'],
  coverageAnalysis: 'perTest',
  // The first run of the whole test set, instrumented, takes minutes here.
  dryRunTimeoutMinutes: 40,
  // Static mutants (module-level constants, schemas) are active from module load, so each would need the whole
  // test set (minutes) rather than its covering tests: left out, and counted in the report as ignored.
  ignoreStatic: true,
  concurrency: 1,
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: false },
  timeoutMS: 30_000,
  timeoutFactor: 2,
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
