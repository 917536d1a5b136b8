/**
 * Bundles as deployed: size of each function's minified bundle, entry and chunks (goal ≤ 1 MiB) and its module init time on a
 * cold `node` (import of the bundle, median of 7 fresh processes; goal ≤ 150 ms wall). The CPU time of the
 * same import (user+sys of the process during it) is printed beside it: on a shared machine the wall time
 * waits for a core, the CPU time does not. The same bundles built as one file each (no code splitting, as
 * before it) are timed alternately with them, so a change of the machine's load falls on both.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './support/child.ts';

const RUNS = 7;
const env = { ...process.env, S3_STORAGE_BUCKET: 'bench-bucket', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off', AWS_REGION: 'us-east-1' };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** Wall and CPU ms of importing `file` in a fresh node (exits 2 if it exports no handler); without a file,
 *  of the same script importing nothing (the floor). */
function importMs(file?: string): { wall: number; cpu: number } {
  const load = file === undefined ? '' : `const m=await import(${JSON.stringify(pathToFileURL(file).href)}); if(typeof m.handler!=='function') process.exit(2); `;
  const script = `const t=performance.now(); const c=process.cpuUsage(); ${load}const d=process.cpuUsage(c); console.log(performance.now()-t, (d.user+d.system)/1000)`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(out.stderr);
  const [wall, cpu] = out.stdout.trim().split(' ').map(Number);
  return { wall: wall ?? 0, cpu: cpu ?? 0 };
}

/** Medians over RUNS fresh processes per file, the files taken in turn within each round. */
function medians(files: readonly (string | undefined)[]): { wall: number; cpu: number }[] {
  const samples = files.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (let i = 0; i < RUNS; i++) {
    files.forEach((file, j) => {
      const { wall, cpu } = importMs(file);
      samples[j]?.wall.push(wall);
      samples[j]?.cpu.push(cpu);
    });
  }
  return samples.map((s) => ({ wall: median(s.wall), cpu: median(s.cpu) }));
}

type BuildAll = (outdir?: string, options?: { splitting?: boolean }) => Promise<Record<string, number>>;

export async function run(): Promise<void> {
  const { buildAll } = (await import(pathToFileURL(join(REPO, 'scripts/build.mjs')).href)) as { buildAll: BuildAll };
  const sizes = await buildAll();
  const single = join(REPO, '.bench-tmp', 'bundle-single');
  const singleSizes = await buildAll(single, { splitting: false });
  const [floor] = medians([undefined]);
  console.log(`function   bundle KiB   init ms wall   init ms CPU   (median of ${RUNS} cold node processes)   goal ≤1024 KiB & ≤150 ms`);
  for (const fn of ['upload', 'fetch', 'cleanup']) {
    const [split, one] = medians([join(REPO, 'dist', fn, 'index.mjs'), join(single, fn, 'index.mjs')]);
    if (split === undefined || one === undefined) continue;
    const bytes = sizes[fn] ?? 0;
    console.log(`${fn.padEnd(10)} ${(bytes / 1024).toFixed(0).padStart(10)} ${split.wall.toFixed(1).padStart(14)} ${split.cpu.toFixed(1).padStart(13)}   ${bytes <= 1024 * 1024 && split.wall <= 150 ? 'met' : 'MISSED'}`);
    console.log(`  one file ${((singleSizes[fn] ?? 0) / 1024).toFixed(0).padStart(10)} ${one.wall.toFixed(1).padStart(14)} ${one.cpu.toFixed(1).padStart(13)}   (not split, timed in turn with the bundle above)`);
  }
  console.log(`(an empty script measured the same way: ${floor?.wall.toFixed(1)} ms wall, ${floor?.cpu.toFixed(1)} ms CPU)`);
}
