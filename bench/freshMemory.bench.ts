/**
 * `npm run bench freshMemory`: what touching fresh memory costs on this machine. A cold function touches every
 * page of its part buffers, its Buffers' malloc arena and V8's heap for the first time, and each first touch is a
 * page fault that the kernel serves by mapping a zeroed page. On the Firecracker VMs here one fault of a 4 KiB
 * page cost 11–15 µs of CPU (the copy of the same 64 MiB into pages already mapped takes 3 ms), which is most
 * of a cold start's fixed cost (docs/DEVELOPMENT.md, "Fresh memory").
 *
 * Each child allocates 64 MiB (Buffer.allocUnsafe: glibc maps it fresh), fills it, drops it and collects it,
 * ROUNDS times, and reports its page faults and CPU per round; then fills a buffer it already touched (no
 * faults: the copy alone). Run with glibc's default malloc and with GLIBC_TUNABLES=glibc.malloc.hugetlb=1
 * (glibc 2.35 or later: malloc asks for transparent huge pages with madvise, one fault per 2 MiB).
 *
 * The kernel's page cache is memory too. A restore writes its file into pages the kernel takes from its free
 * ones; those another file just gave back are cheap, never-touched ones are not. So the bench then writes
 * FILES files of 1 GiB in turn (writev of 256 KiB, as the restore's file writer, then fdatasync), once removing
 * each before the next and once keeping them all, and prints the system CPU of each write.
 */
import { spawn } from 'node:child_process';
import { writevSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MIB = 2 ** 20;
const ROUNDS = 5;
const TOUCH_MIB = 64;
const FILES = 3;
const FILE_MIB = 1024;

/** The child's code: a round is one fresh 64 MiB buffer filled once. Prints one JSON line. */
const CHILD = `
const touch = (buf) => {
  const cpu = process.cpuUsage();
  const faults = process.resourceUsage().minorPageFault;
  buf.fill(1);
  const used = process.cpuUsage(cpu);
  return { faults: process.resourceUsage().minorPageFault - faults, cpuMs: (used.user + used.system) / 1e3 };
};
const rounds = [];
for (let i = 0; i < ${ROUNDS}; i++) {
  rounds.push(touch(Buffer.allocUnsafe(${TOUCH_MIB * MIB})));
  globalThis.gc();
}
const kept = Buffer.allocUnsafe(${TOUCH_MIB * MIB});
touch(kept);
console.log(JSON.stringify({ rounds, again: touch(kept) }));
`;

interface Touch {
  readonly faults: number;
  readonly cpuMs: number;
}

function child(env: NodeJS.ProcessEnv): Promise<{ rounds: Touch[]; again: Touch }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--expose-gc', '-e', CHILD], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as { rounds: Touch[]; again: Touch }) : reject(new Error(`child exited ${code}`))));
  });
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function run(): Promise<void> {
  console.log(`fresh memory: ${TOUCH_MIB} MiB allocated, filled once and collected, ${ROUNDS} rounds per child; medians`);
  console.log('malloc                         faults/round  CPU ms/round  µs per fault  fill of touched pages, ms');
  for (const [label, tunables] of [
    ['glibc default', undefined],
    ['glibc.malloc.hugetlb=1', 'glibc.malloc.hugetlb=1'],
  ] as const) {
    const env = { ...process.env };
    if (tunables === undefined) delete env.GLIBC_TUNABLES;
    else env.GLIBC_TUNABLES = tunables;
    const { rounds, again } = await child(env);
    const faults = median(rounds.map((r) => r.faults));
    const cpuMs = median(rounds.map((r) => r.cpuMs));
    console.log(`${label.padEnd(30)} ${String(faults).padStart(12)} ${cpuMs.toFixed(1).padStart(13)} ${((cpuMs * 1000) / Math.max(1, faults)).toFixed(1).padStart(13)} ${again.cpuMs.toFixed(1).padStart(26)}`);
  }
  console.log(`\npage cache: ${FILES} files of ${FILE_MIB} MiB written in turn (writev of 256 KiB, fdatasync); system CPU s of each write`);
  for (const keep of [false, true]) console.log(`${(keep ? 'each file kept' : 'each file removed before the next').padEnd(36)} ${(await writeFiles(keep)).map((s) => s.toFixed(2)).join('  ')}`);
}

/** System CPU seconds of writing each of FILES files, removing each before the next unless `keep`. */
async function writeFiles(keep: boolean): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'bks-fresh-'));
  const batch = Array.from({ length: 16 }, () => Buffer.alloc(16 * 1024, 7));
  const batchBytes = 16 * 16 * 1024;
  const seconds: number[] = [];
  try {
    for (let i = 0; i < FILES; i++) {
      const path = join(dir, `file-${i}`);
      const file = await open(path, 'w');
      const before = process.cpuUsage();
      for (let at = 0; at < FILE_MIB * MIB; at += batchBytes) writevSync(file.fd, batch, at);
      await file.datasync();
      seconds.push(process.cpuUsage(before).system / 1e6);
      await file.close();
      if (!keep) await rm(path);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return seconds;
}
