/**
 * Chaos: `bucket-storage restore` SIGKILLed at random points of restores (whole and ranged, to file:// and s3://
 * destinations), then run again. Right after each kill the destination is absent or whole (never partial);
 * after the rerun it is byte-exact, and nothing of the killed run is left: no temporary file beside it, no
 * incomplete multipart upload of its key. On moto_server, which lists multipart uploads.
 */
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../src/core/runtime.ts';
import { startMoto, type MotoServer } from '../support/motoServer.ts';
import { patternBytes } from '../support/sourceData.ts';
import { storeSegment } from '../support/storeSegment.ts';
import { recordChaos, scaled } from './summary.ts';

const KILLS = scaled(20, 12);
const MiB = 1024 * 1024;
const SEGMENTS = [{ id: 'big-enc', size: 24 * MiB + 123, encrypted: true }, { id: 'big-plain', size: 20 * MiB + 7, encrypted: false }];
const MODES = [
  { range: false, to: 'file' },
  { range: true, to: 'file' },
  { range: false, to: 's3' },
  { range: true, to: 's3' },
] as const;

let moto: MotoServer | undefined;
let s3: S3Client;
let dir = '';
let env: Record<string, string>;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' } });
  for (const b of ['crash-restore-src', 'crash-restore-dest']) await s3.send(new CreateBucketCommand({ Bucket: b }));
  dir = await mkdtemp(join(tmpdir(), 'bks-crash-restore-'));
  env = {
    ...(process.env as Record<string, string>),
    AWS_REGION: 'us-east-1',
    S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_ACCESSKEY: 'moto',
    S3_STORAGE_SECRETKEY: 'moto',
    S3_STORAGE_BUCKET: 'crash-restore-src',
    S3_STORAGE_REGION: 'us-east-1',
    S3_STORAGE_ENCRYPTION_KEY: 'crash-restore-secret-0123456789abcdefghijklmnopqrstuvwxyz',
    S3_STORAGE_RESTORE_ROOT: dir,
    S3_STORAGE_PART_SIZE_MIB: '5',
    // A killed restore's leftovers are abandoned after this long (the functions' timeout, shortened for the test).
    S3_STORAGE_UPLOAD_TIMEOUT_SECONDS: '1',
    LOG_LEVEL: 'ERROR',
  };
  const runtime = await createRuntime(env);
  for (const seg of SEGMENTS) {
    await storeSegment(runtime.store, runtime.registry.current, { dataspace: 'crash', segmentId: seg.id }, seg.size, seg.id, { key: seg.encrypted ? runtime.keyRing.current : undefined, chunkLog2: 20 });
  }
});
afterAll(async () => {
  moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Restore {
  readonly args: string[];
  readonly expected: Buffer;
  /** The destination's bytes, or undefined when there is none. */
  read(): Promise<Buffer | undefined>;
  /** Temporary files or incomplete multipart uploads the restore left. */
  leftovers(): Promise<number>;
}

/** Restore number `k`: of kind k % 4 (whole/ranged × file/s3, alternating the encrypted and the plain segment). */
function plan(k: number): Restore {
  const kind = k % MODES.length;
  const mode = MODES[kind]!;
  const seg = SEGMENTS[(kind + (kind >> 1)) % SEGMENTS.length]!;
  const start = mode.range ? (k * 7_919_993) % (seg.size - 12 * MiB) : 0;
  const end = mode.range ? start + 12 * MiB : seg.size - 1;
  const expected = patternBytes(seg.size, seg.id).subarray(start, end + 1);
  const name = `restore-${k}`;
  const to = mode.to === 'file' ? `file://${join(dir, name)}` : `s3://crash-restore-dest/${name}`;
  const args = ['restore', '--dataspace', 'crash', '--segment', seg.id, '--to', to, ...(mode.range ? ['--range', `${start}-${end}`] : [])];
  if (mode.to === 'file') {
    return {
      args,
      expected,
      read: () => readFile(join(dir, name)).catch(() => undefined),
      leftovers: async () => (await readdir(dir)).filter((f) => f.startsWith(`.${name}.`)).length,
    };
  }
  return {
    args,
    expected,
    read: async () => {
      try {
        const out = await s3.send(new GetObjectCommand({ Bucket: 'crash-restore-dest', Key: name }));
        return Buffer.from(await out.Body!.transformToByteArray());
      } catch {
        return undefined;
      }
    },
    leftovers: async () => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: 'crash-restore-dest', Prefix: name }))).Uploads ?? []).filter((u) => u.Key === name).length,
  };
}

/**
 * Runs the CLI. With `killAt` (0..1), SIGKILLs it that far into its writing phase: from the moment its
 * temporary file or multipart upload appears (polled), for `killAt` × `writeMs`. Resolves to its exit code
 * (null when killed) and how long it wrote (until it exited).
 */
async function runCli(r: Restore, kill?: { at: number; writeMs: number }): Promise<{ code: number | null; writeMs: number; stderr: string }> {
  const child = spawn(process.execPath, ['bin/bucket-storage.mjs', ...r.args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  let exited = false;
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => ((exited = true), resolve(code))));
  while (!exited && (await r.leftovers()) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  const writing = Date.now();
  if (kill !== undefined && !exited) {
    await new Promise((resolve) => setTimeout(resolve, kill.at * kill.writeMs));
    child.kill('SIGKILL');
  }
  const code = await exit;
  return { code, writeMs: Date.now() - writing, stderr };
}

describe('crashes during restores', () => {
  it(`${KILLS} SIGKILLs of restore (whole/ranged, file/s3): never a partial destination; the rerun is byte-exact and leaves nothing`, async () => {
    // How long each kind of restore writes here: kills land anywhere inside that phase.
    const durations: number[] = [];
    for (let kind = 0; kind < MODES.length; kind++) {
      const run = await runCli(plan(kind));
      expect(run.code, run.stderr).toBe(0);
      durations.push(run.writeMs);
    }
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const counts = { kills: 0, midWrite: 0, wholeBeforeKill: 0, partial: 0, rerunsChecked: 0, rerunMismatches: 0, leftAfterRerun: 0 };
    // Two lanes of kill-then-rerun, on different destinations.
    let next = 0;
    const lane = async () => {
      for (let k = next++; k < KILLS; k = next++) await killAndRerun(k);
    };
    const killAndRerun = async (k: number) => {
      const r = plan(k + MODES.length);
      const killed = await runCli(r, { at: 0.9 * random(), writeMs: durations[k % MODES.length]! });
      counts.kills++;
      const after = await r.read();
      if (after !== undefined) {
        if (sha(after) === sha(r.expected)) counts.wholeBeforeKill++;
        else counts.partial++;
      }
      if (killed.code === null && (await r.leftovers()) > 0) counts.midWrite++;
      // The functions' timeout (shortened to 1 s) passes, as it would before a redelivered invocation.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const rerun = await runCli(r);
      expect(rerun.code, `${r.args.join(' ')}: ${rerun.stderr}`).toBe(0);
      const restored = await r.read();
      counts.rerunsChecked++;
      if (restored === undefined || sha(restored) !== sha(r.expected)) counts.rerunMismatches++;
      counts.leftAfterRerun += await r.leftovers();
    };
    await Promise.all([lane(), lane()]);
    const stray = (await readdir(dir)).filter((f) => f.endsWith('.restoring'));
    recordChaos({
      scenario: `restore SIGKILLed ${counts.kills}× (whole/ranged, file/s3)`,
      faults: { sigkill: counts.kills, 'killed mid-write': counts.midWrite },
      retried: counts.rerunsChecked,
      segmentsChecked: counts.rerunsChecked,
      losses: counts.partial + counts.rerunMismatches + counts.leftAfterRerun + stray.length,
      foreignDeletions: 0,
      note: `${counts.midWrite} kills left a temporary file or multipart upload, removed by the rerun; ${counts.wholeBeforeKill} restores had finished before their kill; partial destinations seen: ${counts.partial}`,
    });
    expect(counts.partial).toBe(0);
    expect(counts.rerunMismatches).toBe(0);
    expect(counts.leftAfterRerun).toBe(0);
    expect(stray).toEqual([]);
    // The kills really hit restores while they wrote (the count is the observed leftovers).
    expect(counts.midWrite).toBeGreaterThanOrEqual(Math.ceil(KILLS / 2));
    console.log(`restore write phases (ms): ${durations.join(', ')}`);
    expect((await stat(dir)).isDirectory()).toBe(true);
  });
});
