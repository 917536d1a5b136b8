/**
 * `npm run bench verify`: `bucket-storage verify --metadata` (HEAD per object, no body) over a bucket of
 * 3,000 small encrypted segments, on each local server in its own process (fauxqs in memory, s3rver on disk),
 * at a few concurrencies, with the compiled CLI (`npm run build`). Prints objects/s of the whole process and
 * of its checking alone (wall minus that of the same command over an empty dataspace: start-up, registry and
 * an empty listing), and the CPU ms per 1,000 objects (user+sys, /usr/bin/time). The goal is ≥ 1,000
 * objects/s. Beside it, `aws s3api list-objects-v2` of the same bucket (the listing alone).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime } from '../src/core/runtime.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { REPO } from './support/child.ts';
import { startServer, type BenchServer, type ServerName } from './support/servers.ts';

const OBJECTS = Number(process.env.BENCH_VERIFY_OBJECTS ?? 3_000);
const BUCKET = 'bench-verify';
const SECRET = 'bench-verify-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH';

interface Timed {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly stdout: string;
}

/** Runs a command under /usr/bin/time: wall clock and the user+sys CPU of the process and its children. */
function timed(cmd: string, args: readonly string[], env: Record<string, string>): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'BENCH_CPU %U %S', cmd, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const wallMs = performance.now() - started;
      const cpu = /BENCH_CPU ([\d.]+) ([\d.]+)/.exec(stderr);
      if (cpu === null) return reject(new Error(`${cmd} ${args.join(' ')}: no timing (${stderr.slice(-500)})`));
      resolve({ wallMs, cpuMs: (Number(cpu[1]) + Number(cpu[2])) * 1000, stdout });
    });
  });
}

function envOf(server: BenchServer, root: string): Record<string, string> {
  return {
    AWS_REGION: server.region,
    AWS_ACCESS_KEY_ID: server.accessKey,
    AWS_SECRET_ACCESS_KEY: server.secretKey,
    S3_STORAGE_ACCESSKEY: server.accessKey,
    S3_STORAGE_SECRETKEY: server.secretKey,
    S3_STORAGE_ENDPOINT_BASE: server.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_REGION: server.region,
    S3_STORAGE_BUCKET: BUCKET,
    S3_STORAGE_ENCRYPTION_KEY: SECRET,
    S3_STORAGE_SOURCE_ROOT: root,
    LOG_LEVEL: 'ERROR',
  };
}

async function fill(server: BenchServer, root: string): Promise<void> {
  const runtime = await createRuntime(envOf(server, root));
  const source = join(root, 'segment');
  await writeFile(source, Buffer.alloc(4096, 7));
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < OBJECTS; i = next++) {
      await uploadSegment(runtime, { version: 1, dataspace: 'bench', segmentId: `seg-${String(i).padStart(5, '0')}`, source: `file://${source}` });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function onServer(name: ServerName, scratch: string): Promise<string[]> {
  const dir = join(scratch, name);
  await mkdir(dir, { recursive: true });
  const server = await startServer(name, dir, BUCKET);
  const rows: string[] = [];
  try {
    await fill(server, dir);
    const env = envOf(server, dir);
    const listing = await timed('aws', ['s3api', 'list-objects-v2', '--bucket', BUCKET, '--endpoint-url', server.endpoint, '--query', 'length(Contents)', '--output', 'text'], { ...env, AWS_CA_BUNDLE: '' });
    rows.push(`${name.padEnd(7)} ${'aws s3api list-objects-v2 (listing only)'.padEnd(44)} ${String(Math.round(OBJECTS / (listing.wallMs / 1000))).padStart(9)} ${'-'.padStart(9)} ${'-'.padStart(9)}   (${listing.stdout.split(/\s+/).filter(Boolean).reduce((n, page) => n + Number(page), 0)} listed; the whole aws process)`);
    const empty = await timed(process.execPath, ['bin/bucket-storage.mjs', 'verify', '--metadata', '--dataspace', 'none-here'], env);
    rows.push(`${name.padEnd(7)} ${'verify --metadata --dataspace none-here'.padEnd(44)} ${'-'.padStart(9)} ${'-'.padStart(9)} ${'-'.padStart(9)}   start-up and empty listing: ${Math.round(empty.wallMs)} ms wall, ${Math.round(empty.cpuMs)} ms CPU`);
    for (const concurrency of [8, 32, 64]) {
      const run = await timed(process.execPath, ['bin/bucket-storage.mjs', 'verify', '--metadata', '--concurrency', String(concurrency)], env);
      const summary = run.stdout.split('\n')[0] ?? '';
      const rate = OBJECTS / (run.wallMs / 1000);
      const checking = OBJECTS / (Math.max(1, run.wallMs - empty.wallMs) / 1000);
      const cpu = ((run.cpuMs - empty.cpuMs) / OBJECTS) * 1000;
      rows.push(`${name.padEnd(7)} ${`verify --metadata --concurrency ${concurrency}`.padEnd(44)} ${String(Math.round(rate)).padStart(9)} ${String(Math.round(checking)).padStart(9)} ${String(Math.round(cpu)).padStart(9)}   ${checking >= 1_000 ? 'met' : 'MISSED'}: ${summary}`);
    }
  } finally {
    await server.stop();
  }
  return rows;
}

export async function run(): Promise<void> {
  // The compiled CLI, as `npx bucket-storage` runs once built.
  await timed('npm', ['run', '--silent', 'build'], {});
  const scratch = await mkdtemp(join(tmpdir(), 'bks-bench-verify-'));
  try {
    console.log(`verify --metadata over ${OBJECTS} segments of 4 KiB (encrypted), CLI process timed whole (start-up included); goal ≥ 1,000 objects/s`);
    console.log(`server  ${'command'.padEnd(44)} ${'obj/s'.padStart(9)} ${'checking'.padStart(9)} ${'CPU ms/k'.padStart(9)}   (obj/s: whole process; checking: without start-up; CPU ms per 1,000 objects, start-up excluded)`);
    for (const name of ['fauxqs', 's3rver'] as const) for (const row of await onServer(name, scratch)) console.log(row);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
