/** `npm start`'s demo runs to its summary with exit 0 (smaller segments here; .ci/run runs the full one). */
import { describe, expect, it } from 'vitest';
import { runProcess } from './support/runProcess.ts';

describe('npm start demo', () => {
  it('runs the pipeline end to end and exits 0 with a summary', async () => {
    const run = await runProcess(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { env: { ...process.env, DEMO_MAX_MIB: '8' }, timeoutMs: 180_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('objects in bucket    5');
    expect(run.stdout).toContain('messages in DLQ      1');
    // After its switch to a fresh bucket, the demo announces an old segment again: found in the old bucket.
    expect(run.stdout).toContain('announced segment-00 again: already-stored in bucket-storage-demo\n');
    // The upload lag, and the storage used in each registered bucket after the switch and cleanup.
    expect(run.stdout).toMatch(/upload lag {11}median \d+ s, max \d+ s from announcement to stored object/);
    expect(run.stdout).toMatch(/storage used {9}bucket-storage-demo: 4 segment objects, [\d.]+ MiB\n/);
    expect(run.stdout).toMatch(/storage used {9}bucket-storage-demo-2 \(current\): 1 segment objects, 0\.1 MiB\n/);
    expect(run.stdout).not.toContain('"_aws"');
    expect(run.stdout).toContain('demo OK');
  });
});
