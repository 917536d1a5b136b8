/**
 * Uploads to the embedded server (fauxqs, in this process): a 1 GiB segment through uploadSegment (encrypted and
 * `off`) in a child process (its peak RSS), beside `aws s3 cp` of the same file to the same server in the same
 * run. Goals: ≥ 1.2× aws s3 cp, peak RSS < 160 MiB. Objects are deleted after each measurement (fauxqs keeps
 * everything in memory).
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createRuntime } from '../src/core/runtime.ts';
import { startLocalServers } from '../src/local/embeddedServers.ts';
import { patternStream } from '../test/support/sourceData.ts';
import { bundleChild, exec, REPO } from './support/child.ts';

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const BUCKET = 'bench-upload';

export async function run(): Promise<void> {
  const servers = await startLocalServers();
  servers.createBucket(BUCKET);
  const dir = await mkdtemp(join(tmpdir(), 'bks-bench-upload-'));
  try {
    const child = await bundleChild(join(REPO, 'bench/support/uploadChild.ts'), dir);
    const file = join(dir, 'segment');
    await pipeline(patternStream(SIZE, 'upload-bench'), createWriteStream(file));
    const env = { ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_SOURCE_ROOT: dir };
    const runtime = await createRuntime({ ...env, S3_STORAGE_ENCRYPTION_KEY: 'off' });
    const ref = { bucket: BUCKET, region: servers.region };

    const t0 = performance.now();
    const aws = await exec('/usr/bin/time', ['-f', 'RSS %M', 'aws', 's3', 'cp', file, `s3://${BUCKET}/aws-copy`, '--endpoint-url', servers.endpoint, '--region', servers.region, '--only-show-errors'], {
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    const awsMs = performance.now() - t0;
    const awsRss = Number(/RSS (\d+)/.exec(aws.stderr)?.[1] ?? 0) / 1024;
    await runtime.store.deleteBatch(ref, ['aws-copy']);
    const awsRate = SIZE / MiB / (awsMs / 1000);

    console.log('1 GiB segment file → embedded S3 (8 MiB parts, 4 in flight), child process; aws s3 cp of the same file, same server');
    console.log('run                  MiB/s   peak RSS MiB   × aws s3 cp   goal ≥1.2× & <160 MiB');
    console.log(`aws s3 cp         ${awsRate.toFixed(1).padStart(8)} ${awsRss.toFixed(1).padStart(14)} ${'1.00'.padStart(12)}×`);
    for (const key of ['bench-upload-secret-0123456789abcdefghijklmnopqrstuvwxyz', 'off']) {
      const id = key === 'off' ? 'off' : 'encrypted';
      const { stdout } = await exec(process.execPath, [child, file, id], { ...env, S3_STORAGE_ENCRYPTION_KEY: key });
      const r = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { ms: number; maxRssKiB: number; result: { key: string; size: number } };
      if (r.result.size !== SIZE) throw new Error('upload bench: wrong size stored');
      await runtime.store.deleteBatch(ref, [r.result.key]);
      const rate = SIZE / MiB / (r.ms / 1000);
      const ratio = rate / awsRate;
      console.log(`${`ours, ${id}`.padEnd(17)} ${rate.toFixed(1).padStart(8)} ${(r.maxRssKiB / 1024).toFixed(1).padStart(14)} ${ratio.toFixed(2).padStart(12)}×   ${ratio >= 1.2 && r.maxRssKiB / 1024 < 160 ? 'met' : 'MISSED'}`);
    }
  } finally {
    await servers.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
