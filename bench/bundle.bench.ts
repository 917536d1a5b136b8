/**
 * Bundles as deployed: size of each function's minified bundle (goal ≤ 1 MiB) and its module init time on a
 * cold `node` (import of the bundle, median of 7 fresh processes; goal ≤ 150 ms). Measured beside a cold
 * `node -e 0` in the same run, the floor every process pays.
 */
import { spawnSync } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './support/child.ts';

const RUNS = 7;
const env = { ...process.env, S3_STORAGE_BUCKET: 'bench-bucket', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', AWS_REGION: 'us-east-1' };

function medianMs(script: string): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
    if (out.status !== 0) throw new Error(out.stderr);
    times.push(Number(out.stdout.trim()));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(RUNS / 2)] ?? 0;
}

export async function run(): Promise<void> {
  const { buildAll } = (await import(pathToFileURL(join(REPO, 'scripts/build.mjs')).href)) as { buildAll: () => Promise<Record<string, number>> };
  await buildAll();
  console.log(`function   bundle KiB   init ms (median of ${RUNS} cold node processes)   goal ≤1024 KiB & ≤150 ms`);
  for (const fn of ['upload', 'fetch', 'cleanup']) {
    const file = join(REPO, 'dist', fn, 'index.mjs');
    const bytes = (await stat(file)).size;
    const ms = medianMs(`const t=performance.now(); const m=await import(${JSON.stringify(pathToFileURL(file).href)}); if(typeof m.handler!=='function') process.exit(2); console.log(performance.now()-t)`);
    console.log(`${fn.padEnd(10)} ${(bytes / 1024).toFixed(0).padStart(10)} ${ms.toFixed(1).padStart(9)}   ${bytes <= 1024 * 1024 && ms <= 150 ? 'met' : 'MISSED'}`);
  }
}
