/**
 * `npm run bench cli`: `bucket-storage encrypt` and `decrypt` of a 1 GiB random file → /dev/null beside
 * `openssl enc -aes-256-ctr` (and `-d`) of the same file, same run (issue 12, goal 5: ≥ 0.5× openssl's MiB/s).
 * Each is a shell `cmd < file > /dev/null` under /usr/bin/time: wall MiB/s, CPU s/GiB (user+sys, children
 * included), peak RSS; median of RUNS. The CLI runs compiled (npm run build's dist/cli, as bin/bucket-storage.mjs
 * runs it once built), so its start-up is node's and the module graph's, not the TypeScript loader's.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from './support/child.ts';
import { cleanEnv, measure, type Measured } from './support/measure.ts';

const MiB = 2 ** 20;
const SIZE = 1024 * MiB;
const RUNS = 3;
const SECRET = 'bench-cli-secret-0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEF';

async function randomFile(path: string): Promise<void> {
  const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
  const zeros = Buffer.alloc(4 * MiB);
  const out = createWriteStream(path);
  for (let done = 0; done < SIZE; done += zeros.length) {
    if (!out.write(cipher.update(zeros))) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

export async function run(): Promise<void> {
  const { buildCli } = (await import(pathToFileURL(join(REPO, 'scripts/build.mjs')).href)) as { buildCli: (outdir?: string) => Promise<void> };
  await buildCli(join(REPO, 'dist'));
  const dir = await mkdtemp(join(tmpdir(), 'bks-bench-cli-'));
  try {
    const plain = join(dir, 'plain');
    const sealed = join(dir, 'sealed');
    await randomFile(plain);
    const env = cleanEnv({ S3_STORAGE_ENCRYPTION_KEY: SECRET });
    const key = randomBytes(32).toString('hex');
    const iv = randomBytes(16).toString('hex');
    const cli = `node ${join(REPO, 'bin/bucket-storage.mjs')}`;
    const ident = '--dataspace bench --segment cli';
    await measure('sh', ['-c', `${cli} encrypt ${ident} < ${plain} > ${sealed}`], env, dir);
    const cases: [string, string][] = [
      ['openssl enc -aes-256-ctr', `openssl enc -aes-256-ctr -K ${key} -iv ${iv} -in ${plain} -out /dev/null`],
      ['bucket-storage encrypt', `${cli} encrypt ${ident} < ${plain} > /dev/null`],
      ['openssl enc -d -aes-256-ctr', `openssl enc -d -aes-256-ctr -K ${key} -iv ${iv} -in ${plain} -out /dev/null`],
      ['bucket-storage decrypt', `${cli} decrypt ${ident} < ${sealed} > /dev/null`],
    ];
    const results = new Map<string, Measured[]>();
    for (let r = 0; r < RUNS; r++) {
      for (const [name, command] of cases) results.set(name, [...(results.get(name) ?? []), await measure('sh', ['-c', command], env, dir)]);
    }
    const rate = (name: string) => SIZE / MiB / median((results.get(name) ?? []).map((m) => m.wallS));
    console.log(`1 GiB random file → /dev/null, median of ${RUNS}; CPU = user+sys of the shell and its children`);
    console.log('command                        MiB/s  CPU s/GiB  RSS MiB   × openssl   goal ≥ 0.5×');
    for (const [name] of cases) {
      const ms = results.get(name) ?? [];
      const cpu = median(ms.map((m) => m.userS + m.sysS));
      const rss = median(ms.map((m) => m.maxRssKiB)) / 1024;
      const peer = name.startsWith('bucket-storage') ? rate(name === 'bucket-storage encrypt' ? 'openssl enc -aes-256-ctr' : 'openssl enc -d -aes-256-ctr') : undefined;
      const ratio = peer === undefined ? undefined : rate(name) / peer;
      console.log(
        `${name.padEnd(29)} ${rate(name).toFixed(0).padStart(6)} ${cpu.toFixed(2).padStart(10)} ${rss.toFixed(0).padStart(8)}` +
          (ratio === undefined ? '' : `   ${ratio.toFixed(2).padStart(9)}   ${ratio >= 0.5 ? 'met' : 'MISSED'}`),
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
