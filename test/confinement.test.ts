/**
 * Confinement holds for the file actually opened. While a helper process swaps path components in a loop
 * (renameat2 RENAME_EXCHANGE of a directory and a symlink to a directory outside the root; of a regular file
 * and a symlink to a file outside), 200 uploads and 200 restores run: no byte from outside the source root is
 * ever stored, and nothing is written outside the restore root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInside } from '../src/core/confinement.ts';
import { BucketStorageError, LocationError, PathOutsideRootError } from '../src/core/errors.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { createDecryptStream } from '../src/core/format/index.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';

const SECRET = 'confinement-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEF';
const BUCKET = 'confinement';
const MARKER = `OUTSIDE-THE-ROOT-${randomBytes(8).toString('hex')}`;
const OPERATIONS = 200;

/** Swaps each pair of paths with renameat2(RENAME_EXCHANGE), as fast as it can, until killed. */
const SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
pairs = [(sys.argv[i].encode(), sys.argv[i + 1].encode()) for i in range(1, len(sys.argv), 2)]
swaps = 0
while True:
    for a, b in pairs:
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
        swaps += 1
`;

/** Outside files have the sizes of the inside ones, so a read that escaped would pass every size check. */
const markerOfLength = (n: number) => `${MARKER}\n`.repeat(Math.ceil(n / (MARKER.length + 1))).slice(0, n);

let servers: LocalServers;
let base: string;
let runtime: Runtime;

beforeAll(async () => {
  servers = await startLocalServers({ port: 0 });
  servers.createBucket(BUCKET);
  base = await mkdtemp(join(tmpdir(), 'bks-confinement-'));
});
afterAll(async () => {
  await servers?.stop();
  await rm(base, { recursive: true, force: true });
});

async function everything(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.set(join(entry.parentPath, entry.name), (await readFile(join(entry.parentPath, entry.name))).toString('hex'));
  }
  return out;
}

async function plaintextOf(key: string, segmentId: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  const body = (await runtime.store.get({ bucket: BUCKET, region: servers.region }, key)).pipe(createDecryptStream({ keyRing: runtime.keyRing, identity: { dataspace: 'conf', segmentId } }));
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Runs `jobs` with at most `width` in flight; resolves to each outcome (a value or the error). */
async function inParallel<T>(jobs: (() => Promise<T>)[], width: number): Promise<(T | unknown)[]> {
  const results: (T | unknown)[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!().catch((err: unknown) => err);
      }
    }),
  );
  return results;
}

describe('confinement under path swaps', () => {
  it(`${OPERATIONS} uploads and ${OPERATIONS} restores while components are swapped: nothing crosses a root`, async () => {
    const sources = join(base, 'sources');
    const restores = join(base, 'restores');
    const outside = join(base, 'outside');
    await Promise.all([sources, restores, outside].map((d) => mkdir(d)));
    // Inside the source root: d/ holds the segments; l -> outside/, a directory of the same names holding the marker.
    await mkdir(join(sources, 'd'));
    await mkdir(join(outside, 'src'));
    for (let i = 0; i < 10; i++) {
      await writeFile(join(sources, 'd', `seg-${i}`), `inside segment ${i}\n`.repeat(100));
      await writeFile(join(outside, 'src', `seg-${i}`), markerOfLength(1700));
    }
    await symlink(join(outside, 'src'), join(sources, 'l'));
    // A file and a symlink to a file outside, exchanged.
    await writeFile(join(sources, 'flip'), 'inside flip file\n'.repeat(50));
    await writeFile(join(outside, 'marker'), markerOfLength(850));
    await symlink(join(outside, 'marker'), join(sources, 'flip-alt'));
    // Inside the restore root: d/ (restores go there) exchanged with l -> outside/dst; f/tgt exchanged with a symlink.
    await mkdir(join(restores, 'd'));
    await mkdir(join(restores, 'f'));
    await mkdir(join(outside, 'dst'));
    await writeFile(join(outside, 'dst', 'keep'), MARKER);
    await symlink(join(outside, 'dst'), join(restores, 'l'));
    await writeFile(join(restores, 'f', 'tgt'), 'old');
    await symlink(join(outside, 'marker'), join(restores, 'f', 'tgt-alt'));

    runtime = await createRuntime({ ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_ENCRYPTION_KEY: SECRET, S3_STORAGE_SOURCE_ROOT: sources, S3_STORAGE_RESTORE_ROOT: restores });
    const stored = await uploadSegment(runtime, { version: 1, dataspace: 'conf', segmentId: 'to-restore', source: `file://${join(sources, 'd', 'seg-0')}` });
    const outsideBefore = await everything(outside);

    const swapper: ChildProcess = spawn('python3', ['-c', SWAPPER, ...[['d', 'l'], ['flip', 'flip-alt']].flatMap((p) => p.map((n) => join(sources, n))), ...[['d', 'l'], ['f/tgt', 'f/tgt-alt']].flatMap((p) => p.map((n) => join(restores, n)))], { stdio: ['ignore', 'ignore', 'pipe'] });
    let swapperError = '';
    swapper.stderr?.on('data', (d: Buffer) => (swapperError += d.toString()));
    const started = Date.now();
    let results: unknown[];
    try {
      const uploads = Array.from({ length: OPERATIONS }, (_, i) => () =>
        uploadSegment(runtime, { version: 1, dataspace: 'conf', segmentId: `up-${i}`, source: `file://${i % 4 === 3 ? join(sources, 'flip') : join(sources, 'd', `seg-${i % 10}`)}` }),
      );
      const restoreJobs = Array.from({ length: OPERATIONS }, (_, i) => () =>
        fetchSegment(runtime, { dataspace: 'conf', segmentId: 'to-restore', destination: `file://${i % 4 === 3 ? join(restores, 'f', 'tgt') : join(restores, 'd', `out-${i}`)}` }),
      );
      const interleaved = uploads.flatMap((u, i) => [u, restoreJobs[i]!]);
      results = await inParallel<unknown>(interleaved, 8);
    } finally {
      swapper.kill('SIGKILL');
    }
    expect(swapperError).toBe('');
    expect(Date.now() - started).toBeLessThan(60_000);

    // Every failure is a typed refusal; both kinds of operation succeeded often and were refused often.
    const failures = results.filter((r) => r instanceof Error);
    for (const f of failures) {
      expect(f).toBeInstanceOf(BucketStorageError);
      expect([PathOutsideRootError, LocationError].some((c) => f instanceof c), String(f)).toBe(true);
    }
    const uploaded = results.filter((r, i) => i % 2 === 0 && !(r instanceof Error)).length;
    const restored = results.filter((r, i) => i % 2 === 1 && !(r instanceof Error)).length;
    expect(uploaded).toBeGreaterThan(0);
    expect(restored).toBeGreaterThan(0);
    expect(failures.length).toBeGreaterThan(0);

    // No byte from outside the source root was stored.
    for (let i = 0; i < OPERATIONS; i++) {
      const result = results[2 * i];
      if (result instanceof Error || typeof result !== 'object' || result === null || !('key' in result) || typeof result.key !== 'string') continue;
      const plain = await plaintextOf(result.key, `up-${i}`);
      expect(plain.toString().includes(MARKER), `up-${i}`).toBe(false);
      expect(plain.toString()).toMatch(/^inside /);
    }
    // Nothing was written outside the restore root: the outside tree is exactly what it was.
    expect(await everything(outside)).toEqual(outsideBefore);
    // And what was restored inside is the segment.
    const inside = [...(await everything(restores)).entries()].filter(([p]) => /out-\d+$/.test(p));
    expect(inside.length).toBeGreaterThan(0);
    for (const [, hex] of inside) expect(Buffer.from(hex, 'hex').equals(Buffer.from('inside segment 0\n'.repeat(100)))).toBe(true);
    expect(stored.outcome).toBe('uploaded');
  }, 120_000);

  it('a name beginning with ".." is inside its root; ".." itself and paths above are not', () => {
    expect(isInside('/srv/root', '/srv/root/..backup')).toBe(true);
    expect(isInside('/srv/root', '/srv/root/a/..b/c')).toBe(true);
    expect(isInside('/srv/root', '/srv/root')).toBe(true);
    expect(isInside('/srv/root', '/srv')).toBe(false);
    expect(isInside('/srv/root', '/srv/root-other/x')).toBe(false);
    expect(isInside('/srv/root', '/srv/root/../x')).toBe(false);
  });
});
