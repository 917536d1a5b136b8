/**
 * Restores on the embedded server (fauxqs, in this process; objects in memory, deleted after measuring):
 *   1. whole restore of a 1 GiB segment, encrypted and `off`, to a file: throughput and peak RSS of a child
 *      process doing only that, with one streaming GET and with 4 ranged GETs in flight, beside
 *      `aws s3 cp` of the same object from the same server in the same run (ratio = our MiB/s ÷ aws's);
 *      goals: ≥ 1.2× and peak RSS < 160 MiB;
 *   2. latency of a 64 KiB range read against the segment's size (16 MiB, 256 MiB, 1 GiB): one HEAD plus one
 *      ranged GET whatever the size, so it must not grow.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveKey } from '../src/core/keyRing.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { storeSegment, type StoredSegment } from '../test/support/storeSegment.ts';
import { bundleChild, exec, REPO } from './support/child.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BUCKET = 'bench-fetch';
const SECRET = 'bench-secret-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij';
const PARALLEL = 4;

interface Timing {
  readonly ms: number;
  readonly maxRssKiB: number;
  /** RSS of the child once its runtime is built, before the restore (ours only). */
  readonly baselineKiB?: number;
}

async function ourRestore(child: string, env: Record<string, string>, segmentId: string, target: string, concurrency: number, expected: StoredSegment): Promise<Timing> {
  const { stdout } = await exec(process.execPath, [child, 'bench', segmentId, `file://${target}`, String(concurrency)], env);
  const line = stdout.trim().split('\n').pop() ?? '';
  const result = JSON.parse(line) as { ms: number; maxRssKiB: number; baselineKiB: number; answer: { sha256: string; bytesWritten: number } };
  if (result.answer.sha256 !== expected.sha256 || result.answer.bytesWritten !== expected.size) throw new Error(`bench restore of ${segmentId} came back wrong`);
  await rm(target);
  return { ms: result.ms, maxRssKiB: result.maxRssKiB, baselineKiB: result.baselineKiB };
}

async function awsCopy(servers: LocalServers, key: string, target: string, size: number): Promise<Timing> {
  const started = performance.now();
  const { stderr } = await exec(
    '/usr/bin/time',
    ['-f', 'RSS %M', 'aws', 's3', 'cp', `s3://${BUCKET}/${key}`, target, '--endpoint-url', servers.endpoint, '--region', servers.region, '--only-show-errors'],
    { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_DEFAULT_REGION: servers.region },
  );
  const ms = performance.now() - started;
  if ((await stat(target)).size !== size) throw new Error('aws s3 cp wrote a file of the wrong size');
  await rm(target);
  return { ms, maxRssKiB: Number(/RSS (\d+)/.exec(stderr)?.[1] ?? 0) };
}

const mibps = (bytes: number, t: Timing) => bytes / MiB / (t.ms / 1000);
const fmt = (n: number, w = 8, d = 1) => n.toFixed(d).padStart(w);

/** Latency (ms) of `samples` 64 KiB range reads at pseudo-random offsets: median and p90. */
async function rangeLatency(runtime: Runtime, root: string, segmentId: string, size: number, samples: number): Promise<{ median: number; p90: number }> {
  const times: number[] = [];
  let seed = 12345;
  for (let i = 0; i < samples; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const start = Math.floor((seed / 2 ** 31) * (size - 64 * 1024));
    const target = join(root, `range-${i}`);
    const t0 = performance.now();
    await fetchSegment(runtime, { dataspace: 'bench', segmentId, destination: `file://${target}`, range: { start, end: start + 64 * 1024 - 1 } });
    times.push(performance.now() - t0);
    await rm(target);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(samples / 2)] ?? 0, p90: times[Math.floor(samples * 0.9)] ?? 0 };
}

export async function run(): Promise<void> {
  const servers = await startLocalServers({ port: 0 });
  servers.createBucket(BUCKET);
  const root = await mkdtemp(join(tmpdir(), 'bks-bench-restore-'));
  const baseEnv = { ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_RESTORE_ROOT: root, S3_STORAGE_ACCESSKEY: 'local', S3_STORAGE_SECRETKEY: 'local' };
  const envFor = (encrypted: boolean) => ({ ...baseEnv, S3_STORAGE_ENCRYPTION_KEY: encrypted ? SECRET : 'off' });
  const runtime = await createRuntime(envFor(true));
  const key = await deriveKey(SECRET);
  const child = await bundleChild(join(REPO, 'bench/support/restoreChild.ts'), root);
  try {
    console.log(`whole restore of a 1 GiB segment to a file (fsync + rename), child process; aws-cli ${'s3 cp'} of the same object, same server`);
    console.log('object      reader                 MiB/s   seconds  peak RSS MiB (before restore)   × aws s3 cp   goal ≥1.2× & <160 MiB');
    const latencies: string[] = [];
    for (const encrypted of [true, false]) {
      const label = encrypted ? 'encrypted' : 'off';
      const segmentId = `whole-${label}`;
      const stored = await storeSegment(runtime.store, { bucket: BUCKET, region: servers.region }, { dataspace: 'bench', segmentId }, GiB, segmentId, {
        key: encrypted ? key : undefined,
      });
      const objectSize = (await runtime.store.head({ bucket: BUCKET, region: servers.region }, stored.key))?.size ?? 0;
      const aws = await awsCopy(servers, stored.key, join(root, 'aws-copy'), objectSize);
      const single = await ourRestore(child, envFor(encrypted), segmentId, join(root, 'ours'), 1, stored);
      const parallel = await ourRestore(child, envFor(encrypted), segmentId, join(root, 'ours'), PARALLEL, stored);
      const awsRate = objectSize / MiB / (aws.ms / 1000);
      for (const [name, t] of [['1 streaming GET', single], [`${PARALLEL} ranged GETs (8 MiB)`, parallel]] as const) {
        const ratio = mibps(GiB, t) / awsRate;
        const ok = ratio >= 1.2 && t.maxRssKiB / 1024 < 160;
        const before = `(${((t.baselineKiB ?? 0) / 1024).toFixed(1)})`.padStart(17);
        console.log(`${label.padEnd(11)} ${name.padEnd(20)} ${fmt(mibps(GiB, t))} ${fmt(t.ms / 1000, 9, 2)} ${fmt(t.maxRssKiB / 1024, 13)}${before} ${fmt(ratio, 13, 2)}×   ${ok ? 'met' : 'MISSED'}`);
      }
      console.log(`${label.padEnd(11)} ${'aws s3 cp'.padEnd(20)} ${fmt(awsRate)} ${fmt(aws.ms / 1000, 9, 2)} ${fmt(aws.maxRssKiB / 1024, 13)}${''.padStart(17)} ${fmt(1, 13, 2)}×`);
      if (encrypted) {
        // Range latency against segment size, with the 1 GiB object still in place, then smaller ones.
        latencies.push(await latencyLine(runtime, root, segmentId, GiB));
      }
      await runtime.store.deleteBatch({ bucket: BUCKET, region: servers.region }, [stored.key]);
    }
    for (const size of [256 * MiB, 16 * MiB]) {
      const segmentId = `range-${size / MiB}`;
      const stored = await storeSegment(runtime.store, { bucket: BUCKET, region: servers.region }, { dataspace: 'bench', segmentId }, size, segmentId, { key });
      latencies.unshift(await latencyLine(runtime, root, segmentId, size));
      await runtime.store.deleteBatch({ bucket: BUCKET, region: servers.region }, [stored.key]);
    }
    console.log('\n64 KiB range read (HEAD + one ranged GET of the chunk span, decrypt, fsync, rename), encrypted, 30 reads');
    console.log('segment size   median ms   p90 ms');
    for (const line of latencies) console.log(line);
  } finally {
    await servers.stop();
    await rm(root, { recursive: true, force: true });
  }
}

async function latencyLine(runtime: Runtime, root: string, segmentId: string, size: number): Promise<string> {
  const { median, p90 } = await rangeLatency(runtime, root, segmentId, size, 30);
  return `${`${size / MiB} MiB`.padEnd(12)} ${fmt(median, 11, 2)} ${fmt(p90, 8, 2)}`;
}
