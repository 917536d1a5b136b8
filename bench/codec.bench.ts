/**
 * The codec: encrypt (SHA-256 + format v1) and decrypt of a 1 GiB file → file, each in a child process (its
 * peak RSS), beside the raw AES-256-GCM and SHA-256 speed of node's crypto measured in the same run, in memory.
 * Goal: ≥ 60% of raw encrypt+hash speed (decrypt: of raw AES-GCM, it hashes nothing); peak RSS < 160 MiB.
 * The same runs to /dev/null, and a `cp` of the file, separate the codec's cost from this machine's disk.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { patternStream } from '../test/support/sourceData.ts';
import { bundleChild, exec, REPO } from './support/child.ts';

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const SECRET = 'bench-codec-secret-0123456789abcdefghijklmnopqrstuvwxyz0123456789';

/** MiB/s of `work` applied to 1 MiB buffers, SIZE bytes in all. */
function rawRate(work: (buf: Buffer) => void): number {
  const buf = randomBytes(MiB);
  const started = performance.now();
  for (let done = 0; done < SIZE; done += MiB) work(buf);
  return SIZE / MiB / ((performance.now() - started) / 1000);
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bks-bench-codec-'));
  try {
    const child = await bundleChild(join(REPO, 'bench/support/codecChild.ts'), dir);
    const plain = join(dir, 'plain');
    await pipeline(patternStream(SIZE, 'codec-bench'), createWriteStream(plain));
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const gcm = rawRate((b) => {
      const c = createCipheriv('aes-256-gcm', key, iv);
      c.update(b);
      c.final();
    });
    const sha = rawRate((b) => void createHash('sha256').update(b).digest());
    const both = 1 / (1 / gcm + 1 / sha); // one core does both, one after the other
    const runChild = async (mode: string, from: string, to: string) => {
      const { stdout } = await exec(process.execPath, [child, mode, from, to], { S3_STORAGE_ENCRYPTION_KEY: SECRET });
      return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { ms: number; maxRssKiB: number };
    };
    const enc = await runChild('encrypt', plain, join(dir, 'sealed'));
    const dec = await runChild('decrypt', join(dir, 'sealed'), join(dir, 'back'));
    // The same runs writing to /dev/null: the codec's own speed, without this machine's disk writes.
    const encNull = await runChild('encrypt', plain, '/dev/null');
    const decNull = await runChild('decrypt', join(dir, 'sealed'), '/dev/null');
    // The disk's ceiling for file → file: a plain copy of the same file.
    const t0 = performance.now();
    await exec('cp', [plain, join(dir, 'copy')], {});
    const cp = { ms: performance.now() - t0, maxRssKiB: 0 };
    const rate = (t: { ms: number }) => SIZE / MiB / (t.ms / 1000);
    console.log('1 GiB file → file, child process per run; raw rates: node crypto on 1 MiB buffers in memory, same run');
    console.log('run                         MiB/s   peak RSS MiB   × raw (encrypt: GCM+SHA-256; decrypt: GCM)   goal ≥0.60× & <160 MiB');
    console.log(`raw AES-256-GCM          ${gcm.toFixed(1).padStart(8)}`);
    console.log(`raw SHA-256              ${sha.toFixed(1).padStart(8)}`);
    console.log(`raw AES-256-GCM+SHA-256  ${both.toFixed(1).padStart(8)}`);
    console.log(`cp (disk ceiling)        ${rate(cp).toFixed(1).padStart(8)}`);
    const rows = [
      ['encrypt (SHA-256 + v1)', enc, both],
      ['decrypt (v1)', dec, gcm],
      ['encrypt → /dev/null', encNull, both],
      ['decrypt → /dev/null', decNull, gcm],
    ] as const;
    for (const [name, t, raw] of rows) {
      const ratio = rate(t) / raw;
      const ok = ratio >= 0.6 && t.maxRssKiB / 1024 < 160;
      console.log(`${name.padEnd(24)} ${rate(t).toFixed(1).padStart(8)} ${(t.maxRssKiB / 1024).toFixed(1).padStart(14)} ${ratio.toFixed(2).padStart(22)}×   ${ok ? 'met' : 'MISSED'}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
