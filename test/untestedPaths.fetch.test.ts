/**
 * Restore paths no other test reached, on the embedded server (fauxqs answers them as S3 does):
 * - a broken GET resumed on the single-GET path (and on the one-GET range path), through the fault proxy;
 * - a failed restore over an existing file leaves that file as it was;
 * - a restore stopped by its deadline signal leaves nothing (file and s3:// destinations);
 * - a destination that is itself a symlink leading outside the restore root is refused.
 * Each test names the break it was checked against.
 */
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { lstat, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError, PathOutsideRootError } from '../src/core/errors.ts';
import { MAX_ATTEMPTS } from '../src/core/clients.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import type { Runtime } from '../src/core/runtime.ts';
import type { S3Store } from '../src/core/s3Store.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { RESUME_ATTEMPTS } from '../src/fetch/objectReader.ts';
import { countRequests, CURRENT_SECRET, startHarness, type Harness } from './support/fetchHarness.ts';
import { startFaultProxy, type FaultKind, type FaultProxy } from './support/faultProxy.ts';
import { patternBytes } from './support/sourceData.ts';
import { storeSegment } from './support/storeSegment.ts';

const CHUNK_LOG2 = 16;
const MiB = 1024 * 1024;
const SIZE = 700_000;

let h: Harness;
let runtime: Runtime;
beforeAll(async () => {
  h = await startHarness('untested-fetch');
  runtime = await h.runtime();
  const key = await deriveKey(CURRENT_SECRET);
  await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'whole' }, SIZE, 'whole', { key, chunkLog2: CHUNK_LOG2 });
  await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'plain' }, SIZE, 'plain', { key: undefined });
});
afterAll(async () => h?.close());

const nothingLeft = async (name: string) => expect((await h.rootEntries()).filter((n) => n.includes(name))).toEqual([]);

describe('a broken GET is resumed where its bytes stopped (single-GET path)', () => {
  /**
   * A runtime whose S3 requests go through a proxy that breaks the first `breaks` GETs mid-body, and whose store
   * counts the reader's GETs (each call is one attempt of the reader; the SDK's own retries happen inside it).
   */
  async function breaking(kind: FaultKind, breaks: number): Promise<{ proxy: FaultProxy; faulty: Runtime; readerGets: () => number }> {
    const proxy = await startFaultProxy({ target: h.servers.endpoint, maxFaults: breaks, rules: [{ match: (m) => m === 'GET', kinds: [kind], rate: 1 }] });
    const rt = await h.runtime({ S3_STORAGE_ENDPOINT_BASE: proxy.endpoint, S3_STORAGE_RESTORE_CONCURRENCY: '1', S3_STORAGE_PLAIN_OBJECTS_BEFORE: new Date(Date.now() + 3_600_000).toISOString() });
    let gets = 0;
    const store = Object.assign(Object.create(rt.store) as S3Store, {
      get: (...args: Parameters<S3Store['get']>) => ((gets += 1), rt.store.get(...args)),
    });
    return { proxy, faulty: { ...rt, store }, readerGets: () => gets };
  }

  // Broken on purpose: RESUME_ATTEMPTS = 0 fails every case below at its first break (AbortError / 'aborted').
  it.each([
    ['reset mid-body', 'resetMidBody', 'whole'],
    ['cut short', 'cutShort', 'whole'],
    ['reset mid-body', 'resetMidBody', 'plain'],
  ] as const)('%s (%s object %s): the restore resumes with a ranged GET from the first byte not passed on, and ends byte-exact', async (_what, kind, segmentId) => {
    const { proxy, faulty, readerGets } = await breaking(kind, 1);
    const dest = join(h.root, `resumed-${kind}-${segmentId}`);
    const answer = await fetchSegment(faulty, { dataspace: 'ds', segmentId, destination: `file://${dest}` });
    await proxy.stop();
    expect(readerGets()).toBe(2);
    expect((await readFile(dest)).equals(patternBytes(SIZE, segmentId))).toBe(true);
    expect(answer.bytesWritten).toBe(SIZE);
    const gets = proxy.log.filter((r) => r.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]).toMatchObject({ fault: kind, range: undefined });
    // The resumed GET asks for the rest of the object, from an offset past the bytes already read.
    const storedSize = (await runtime.store.head(h.bucket, gets[0]!.url.split('?')[0]!.replace(`/${h.bucket.bucket}/`, '')))?.size;
    const m = /^bytes=(\d+)-(\d+)$/.exec(gets[1]?.range ?? '');
    expect(m).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(0);
    expect(Number(m?.[2])).toBe((storedSize ?? 0) - 1);
    expect(gets[1]?.fault).toBeUndefined();
    await rm(dest);
  });

  it('a range read (one ranged GET) resumes too, inside its span', async () => {
    const { proxy, faulty } = await breaking('resetMidBody', 1);
    const dest = join(h.root, 'resumed-range');
    await fetchSegment(faulty, { dataspace: 'ds', segmentId: 'plain', destination: `file://${dest}`, range: { start: 1000, end: 600_999 } });
    await proxy.stop();
    expect((await readFile(dest)).equals(patternBytes(SIZE, 'plain').subarray(1000, 601_000))).toBe(true);
    const ranges = proxy.log.filter((r) => r.method === 'GET').map((r) => r.range);
    expect(ranges[0]).toBe('bytes=1000-600999');
    expect(ranges[1]).toMatch(/^bytes=(\d+)-600999$/);
    expect(Number(/^bytes=(\d+)/.exec(ranges[1] ?? '')?.[1])).toBeGreaterThan(1000);
    await rm(dest);
  });

  it(`resumptions are bounded: a GET that keeps breaking fails the restore after ${RESUME_ATTEMPTS} resumptions, leaving nothing`, async () => {
    const { proxy, faulty, readerGets } = await breaking('resetMidBody', Number.POSITIVE_INFINITY);
    const err = await fetchSegment(faulty, { dataspace: 'ds', segmentId: 'whole', destination: `file://${join(h.root, 'gave-up')}` }).catch((e: unknown) => e);
    await proxy.stop();
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toHaveProperty('bytesWritten');
    expect(readerGets()).toBe(RESUME_ATTEMPTS + 1);
    // Within that, the SDK's own retries are bounded too.
    expect(proxy.log.filter((r) => r.method === 'GET').length).toBeLessThanOrEqual((RESUME_ATTEMPTS + 1) * MAX_ATTEMPTS);
    await nothingLeft('gave-up');
  });
});

describe('a failed restore over an existing file leaves that file as it was', () => {
  // Broken on purpose: writing straight to the destination (no temporary file) leaves it clobbered.
  it('a tampered object: AuthenticationError, the existing file keeps its bytes, inode and mode; no temporary file', async () => {
    const key = await deriveKey(CURRENT_SECRET);
    const stored = await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'tampered-over' }, 3 * 65536 + 9, 'tampered-over', { key, chunkLog2: CHUNK_LOG2 });
    const chunks: Buffer[] = [];
    for await (const c of await runtime.store.get(h.bucket, stored.key)) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    body[body.length - 5] = (body[body.length - 5] ?? 0) ^ 0x40; // in the last chunk: chunks 0..2 verify first
    const info = await runtime.store.head(h.bucket, stored.key);
    await runtime.store.put(h.bucket, stored.key, Readable.from([body]), { metadata: { ...(info?.metadata ?? {}) }, partSize: 8 * MiB, queueSize: 1 });

    const dest = join(h.root, 'existing-file');
    const precious = Buffer.from('the operator’s copy, which must survive a failed restore\n');
    await writeFile(dest, precious, { mode: 0o640 });
    const before = await stat(dest);
    const err = await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'tampered-over', destination: `file://${dest}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err).toMatchObject({ chunkIndex: 3 });
    const after = await stat(dest);
    expect((await readFile(dest)).equals(precious)).toBe(true);
    expect([after.ino, after.mode, after.size]).toEqual([before.ino, before.mode, before.size]);
    expect((await h.rootEntries()).filter((n) => n.startsWith('.'))).toEqual([]);
    // A good restore does replace it.
    await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'whole', destination: `file://${dest}` });
    expect((await readFile(dest)).equals(patternBytes(SIZE, 'whole'))).toBe(true);
    await rm(dest);
  });
});

/** A store whose GET bodies trickle: each piece of the real body is held `delayMs` (a slow network). */
function slowStore(store: S3Store, delayMs: number): S3Store {
  return Object.assign(Object.create(store) as S3Store, {
    async get(...args: Parameters<S3Store['get']>) {
      const body = await store.get(...args);
      const trickle = new Transform({
        highWaterMark: 1,
        transform(chunk: Buffer, _enc, done) {
          setTimeout(() => done(null, chunk), delayMs);
        },
      });
      body.on('error', (e) => trickle.destroy(e));
      return body.pipe(trickle);
    },
  });
}

// Found a bug: on s3:// the restore answered while lib-storage would abort the multipart upload only in the
// background, once the body ended (a frozen Lambda never gets there): S3Store.put now aborts it before answering.
describe('a restore stopped by its deadline (AbortSignal) leaves nothing', () => {
  // Broken on purpose: not passing the signal to the destination's pipeline lets the restore run to its end.
  it('file:// — stopped within its deadline, no file, no temporary file, an existing file untouched', async () => {
    const key = await deriveKey(CURRENT_SECRET);
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'slow' }, 4 * MiB, 'slow', { key, chunkLog2: CHUNK_LOG2 });
    const slow = { ...runtime, store: slowStore(runtime.store, 40) };
    const dest = join(h.root, 'deadline-new');
    const existing = join(h.root, 'deadline-existing');
    await writeFile(existing, 'keep me');
    for (const target of [dest, existing]) {
      const started = Date.now();
      const err = await fetchSegment(slow, { dataspace: 'ds', segmentId: 'slow', destination: `file://${target}` }, { signal: AbortSignal.timeout(400) }).catch((e: unknown) => e);
      const took = Date.now() - started;
      expect(err).toMatchObject({ name: expect.stringMatching(/AbortError|TimeoutError/) as unknown });
      expect(took).toBeLessThan(3_000); // the whole object would take ≥ 64 pieces × 40 ms
    }
    await nothingLeft('deadline-new');
    expect(await readFile(existing, 'utf8')).toBe('keep me');
    expect((await h.rootEntries()).filter((n) => n.startsWith('.'))).toEqual([]);
    // Without a deadline the same slow restore completes: the signal, not the store, stopped it.
    await fetchSegment(slow, { dataspace: 'ds', segmentId: 'slow', destination: `file://${dest}` });
    expect((await stat(dest)).size).toBe(4 * MiB);
    await rm(dest);
    await rm(existing);
  });

  it('s3:// — the multipart upload is aborted: no object, the upload id is gone', async () => {
    const key = await deriveKey(CURRENT_SECRET);
    await storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId: 'slow-s3' }, 12 * MiB, 'slow-s3', { key, chunkLog2: 20 });
    const rt = await h.runtime({ S3_STORAGE_PART_SIZE_MIB: '5' });
    // Restore buckets are written with the function's role.
    const client = rt.clients.s3AsRole();
    const counter = countRequests(client);
    const uploadIds: string[] = [];
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const out = result.output;
        if (typeof out === 'object' && out !== null && 'UploadId' in out && typeof out.UploadId === 'string') uploadIds.push(out.UploadId);
        return result;
      },
      { step: 'initialize', name: 'uploadIds' },
    );
    const controller = new AbortController();
    // The deadline falls while the multipart upload is open: as its first part goes out.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand') controller.abort(new Error('deadline'));
        return next(args);
      },
      { step: 'initialize', name: 'deadlineAtFirstPart' },
    );
    const slow = { ...rt, store: Object.assign(slowStore(rt.store, 5), { put: rt.store.put.bind(rt.store) }) };
    // A bucket of its own: a data bucket of the pipeline is refused as a destination.
    h.servers.createBucket('untested-restored');
    const destination = 's3://untested-restored/restored/slow-s3';
    const err = await fetchSegment(slow, { dataspace: 'ds', segmentId: 'slow-s3', destination }, { signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const commands = counter.requests.map((r) => r.command);
    expect(commands).toContain('CreateMultipartUploadCommand');
    expect(commands).not.toContain('CompleteMultipartUploadCommand');
    expect(commands).toContain('AbortMultipartUploadCommand'); // before the restore answered
    expect(await rt.store.head({ bucket: 'untested-restored', region: h.bucket.region }, 'restored/slow-s3')).toBeUndefined();
    expect(uploadIds).toHaveLength(1);
    await expect(client.send(new UploadPartCommand({ Bucket: 'untested-restored', Key: 'restored/slow-s3', UploadId: uploadIds[0], PartNumber: 9, Body: 'x' }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
  });
});

describe('a destination that is itself a symlink', () => {
  // Broken on purpose: removing resolveNewInsideRoot's check of an existing destination's own target lets the
  // first case through (the restore then replaces the link, after reading the object).
  it('leading outside the restore root → PathOutsideRootError before any request; the link and its target untouched', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'bks-outside-target-'));
    const target = join(outside, 'victim');
    await writeFile(target, 'outside the root');
    const link = join(h.root, 'link-out');
    await symlink(target, link);
    const counter = countRequests(runtime.clients.s3());
    const err = await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'whole', destination: `file://${link}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PathOutsideRootError);
    expect(counter.requests).toEqual([]);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe('outside the root');
    await rm(link);
    await rm(outside, { recursive: true });
  });

  it('leading inside the root → allowed: the restore replaces the link itself, never writing through it', async () => {
    const inside = join(h.root, 'inside-target');
    await writeFile(inside, 'inside');
    const link = join(h.root, 'link-in');
    await symlink(inside, link);
    await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'whole', destination: `file://${link}` });
    expect((await lstat(link)).isSymbolicLink()).toBe(false);
    expect((await readFile(link)).equals(patternBytes(SIZE, 'whole'))).toBe(true);
    expect(await readFile(inside, 'utf8')).toBe('inside');
    await rm(link);
    await rm(inside);
  });
});
