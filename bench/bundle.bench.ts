/**
 * Bundles as deployed: size of each function's minified bundle, entry and chunks (goal ≤ 1 MiB) and its module init time on a
 * cold `node` (import of the bundle, median of 7 fresh processes; goal ≤ 150 ms wall). The CPU time of the
 * same import (user+sys of the process during it) is printed beside it: on a shared machine the wall time
 * waits for a core, the CPU time does not.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './support/child.ts';

const RUNS = 7;
const env = { ...process.env, S3_STORAGE_BUCKET: 'bench-bucket', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', AWS_REGION: 'us-east-1' };

/** Median wall and CPU ms of `script`, which prints "<wall ms> <cpu ms>", over RUNS fresh processes. */
function medianMs(script: string): { wall: number; cpu: number } {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
    if (out.status !== 0) throw new Error(out.stderr);
    const [w, c] = out.stdout.trim().split(' ').map(Number);
    wall.push(w ?? 0);
    cpu.push(c ?? 0);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(RUNS / 2)] ?? 0;
  return { wall: median(wall), cpu: median(cpu) };
}

export async function run(): Promise<void> {
  const { buildAll } = (await import(pathToFileURL(join(REPO, 'scripts/build.mjs')).href)) as { buildAll: () => Promise<Record<string, number>> };
  const sizes = await buildAll();
  const floor = medianMs('const t=performance.now(); const c=process.cpuUsage(); const d=process.cpuUsage(c); console.log(performance.now()-t, (d.user+d.system)/1000)');
  console.log(`function   bundle KiB   init ms wall   init ms CPU   (median of ${RUNS} cold node processes)   goal ≤1024 KiB & ≤150 ms`);
  for (const fn of ['upload', 'fetch', 'cleanup']) {
    const file = join(REPO, 'dist', fn, 'index.mjs');
    const bytes = sizes[fn] ?? 0;
    const ms = medianMs(
      `const t=performance.now(); const c=process.cpuUsage(); const m=await import(${JSON.stringify(pathToFileURL(file).href)}); const d=process.cpuUsage(c); if(typeof m.handler!=='function') process.exit(2); console.log(performance.now()-t, (d.user+d.system)/1000)`,
    );
    console.log(`${fn.padEnd(10)} ${(bytes / 1024).toFixed(0).padStart(10)} ${ms.wall.toFixed(1).padStart(14)} ${ms.cpu.toFixed(1).padStart(13)}   ${bytes <= 1024 * 1024 && ms.wall <= 150 ? 'met' : 'MISSED'}`);
  }
  console.log(`(an empty script measured the same way: ${floor.wall.toFixed(1)} ms wall, ${floor.cpu.toFixed(1)} ms CPU)`);
}
