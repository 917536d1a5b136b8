/**
 * Whole restores written in parts at their own offsets (src/fetch/partsToFile.ts), on the embedded servers:
 * when they are chosen (a bks-digest that opens, a file, ranged GETs asked for) and when not, what they request,
 * and that every failure (a tampered or short part, a digest of another object, a stop) leaves no file.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthenticationError, TruncatedError } from '../src/core/errors.ts';
import { deriveKey, type KeyEntry } from '../src/core/keyRing.ts';
import type { Runtime } from '../src/core/runtime.ts';
import { parseHeader, TAG_SIZE } from '../src/core/format/index.ts';
import { sealDigest } from '../src/core/sealedDigest.ts';
import { fetchSegment, type FetchOptions, type FetchRuntime } from '../src/fetch/fetchSegment.ts';
import { eachAtMost, planParts, restorePartsToFile } from '../src/fetch/partsToFile.ts';
import type { GetStore } from '../src/fetch/objectReader.ts';
import { countRequests, CURRENT_SECRET, startHarness, type Harness } from './support/fetchHarness.ts';
import { patternBytes } from './support/sourceData.ts';
import { storeSegment } from './support/storeSegment.ts';

const CHUNK_LOG2 = 16;
const CHUNK = 2 ** CHUNK_LOG2;
const SEALED_CHUNK = CHUNK + TAG_SIZE;
const HEADER = 48;
/** 3 chunks per part (3 sealed chunks fit, 4 do not). */
const PART = 4 * SEALED_CHUNK - 1;
const SIZE = 20 * CHUNK + 123; // 21 chunks: 7 parts, the last one short
const PARTS = { concurrency: 3, partSize: PART } satisfies FetchOptions;

let h: Harness;
let runtime: Runtime;
let key: KeyEntry;
beforeAll(async () => {
  h = await startHarness('parts-test');
  runtime = await h.runtime();
  key = await deriveKey(CURRENT_SECRET);
});
afterAll(async () => h.close());

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function store(segmentId: string, size = SIZE, sealDigest = true) {
  return storeSegment(runtime.store, h.bucket, { dataspace: 'ds', segmentId }, size, segmentId, { key, chunkLog2: CHUNK_LOG2, sealDigest });
}

function restore(segmentId: string, options: FetchOptions = PARTS, ctx: FetchRuntime = runtime, destination = `file://${join(h.root, segmentId)}`) {
  return fetchSegment(ctx, { dataspace: 'ds', segmentId, destination }, options);
}

async function ranges(run: () => Promise<unknown>): Promise<(string | undefined)[]> {
  const counter = countRequests(runtime.clients.s3());
  await run();
  return counter.requests.filter((r) => r.command === 'GetObjectCommand').map((r) => r.range);
}

async function expectNothingLeft(name: string): Promise<void> {
  expect((await h.rootEntries()).filter((n) => n.includes(name))).toEqual([]);
}

/** The stored object of `segmentId`, replaced by `mutate(body)` under the same metadata. */
async function mutate(storedKey: string, change: (body: Buffer) => Buffer, metadata: (m: Record<string, string>) => Record<string, string> = (m) => m): Promise<void> {
  const info = await runtime.store.head(h.bucket, storedKey);
  const chunks: Buffer[] = [];
  for await (const c of await runtime.store.get(h.bucket, storedKey)) chunks.push(c as Buffer);
  await runtime.store.put(h.bucket, storedKey, Readable.from([change(Buffer.concat(chunks))]), { metadata: metadata({ ...(info?.metadata ?? {}) }), partSize: 8 << 20, queueSize: 2 });
}

/**
 * A runtime whose GETs are counted (started, and most at once); `delay` ms before each part's body is handed over
 * (not the header's GET, which begins at byte 0).
 */
function watchedGets(delay = 0): { ctx: FetchRuntime; most: () => number; started: () => number } {
  let now = 0;
  let most = 0;
  let started = 0;
  const get: GetStore['get'] = async (ref, k, options) => {
    const part = (options?.range?.start ?? 0) > 0;
    if (part) started++;
    most = Math.max(most, part ? ++now : now);
    try {
      if (part) await new Promise((resolve) => setTimeout(resolve, delay));
      const body = await runtime.store.get(ref, k, options);
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      return Readable.from(chunks);
    } finally {
      if (part) now--;
    }
  };
  return { ctx: { ...runtime, store: { head: runtime.store.head.bind(runtime.store), get } }, most: () => most, started: () => started };
}

describe('planParts', () => {
  it('cuts whole chunks, as many as fit in a part, the last part short', () => {
    const parts = planParts(SIZE, CHUNK_LOG2, PART);
    expect(parts.map((p) => [p.firstChunk, p.lastChunk, p.length])).toEqual([
      [0, 2, 3 * CHUNK],
      [3, 5, 3 * CHUNK],
      [6, 8, 3 * CHUNK],
      [9, 11, 3 * CHUNK],
      [12, 14, 3 * CHUNK],
      [15, 17, 3 * CHUNK],
      [18, 20, 2 * CHUNK + 123],
    ]);
    // Stored bytes: the header is never read, each part begins where the one before ended.
    expect(parts[0]?.cipherStart).toBe(HEADER);
    for (let i = 1; i < parts.length; i++) expect(parts[i]?.cipherStart).toBe((parts[i - 1]?.cipherEnd ?? 0) + 1);
    expect(parts.at(-1)?.cipherEnd).toBe(HEADER + SIZE + 21 * TAG_SIZE - 1);
  });

  it('a part smaller than one chunk still holds one', () => {
    expect(planParts(2 * CHUNK, CHUNK_LOG2, 100).map((p) => p.length)).toEqual([CHUNK, CHUNK]);
  });
});

describe('eachAtMost', () => {
  it('runs every index once, never more than the limit at once', async () => {
    let now = 0;
    let most = 0;
    const seen: number[] = [];
    await eachAtMost(10, 3, undefined, async (i) => {
      most = Math.max(most, ++now);
      seen.push(i);
      await new Promise((r) => setTimeout(r, 5));
      now--;
    });
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(most).toBe(3);
  });

  it('the first failure aborts the others, starts no more, and is what it rejects with, once every run settled', async () => {
    const started: number[] = [];
    const aborted: number[] = [];
    let settled = 0;
    const boom = new Error('part 1 failed');
    const run = eachAtMost(10, 3, undefined, async (i, signal) => {
      started.push(i);
      try {
        if (i === 1) throw boom;
        await new Promise((resolve, reject) => {
          const t = setTimeout(resolve, 2000);
          signal.addEventListener('abort', () => (clearTimeout(t), aborted.push(i), reject(new Error('aborted'))), { once: true });
        });
      } finally {
        settled++;
      }
    });
    await expect(run).rejects.toBe(boom);
    expect(started).toEqual([0, 1, 2]);
    expect(aborted.sort()).toEqual([0, 2]);
    expect(settled).toBe(3);
  });

  it('an aborted outer signal stops it', async () => {
    const outer = new AbortController();
    const reason = new Error('deadline');
    const run = eachAtMost(5, 2, outer.signal, (_i, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })));
    outer.abort(reason);
    await expect(run).rejects.toBe(reason);
    await expect(eachAtMost(5, 2, outer.signal, async () => undefined)).rejects.toBe(reason);
  });
});

describe('a whole restore in parts', () => {
  it('writes the segment identical: the header’s 48 bytes checked first, then one ranged GET per part, parts in flight at once', async () => {
    const stored = await store('whole');
    const got = await ranges(() => restore('whole'));
    // First the 48 header bytes, to check them against bks-header; then the parts, which skip them.
    expect(got).toEqual([`bytes=0-${HEADER - 1}`, ...planParts(SIZE, CHUNK_LOG2, PART).map((p) => `bytes=${p.cipherStart}-${p.cipherEnd}`)]);
    expect(sha256(await readFile(join(h.root, 'whole')))).toBe(stored.sha256);
    expect((await readFile(join(h.root, 'whole'))).equals(patternBytes(SIZE, 'whole'))).toBe(true);
    // The answer's digest is the sealed one (the file's hash above agrees with it).
    const watched = watchedGets(20);
    const answer = await restore('whole', PARTS, watched.ctx);
    expect(answer).toEqual({ bucket: h.bucket.bucket, region: h.bucket.region, key: stored.key, size: SIZE, sha256: stored.sha256, bytesWritten: SIZE });
    expect(watched.most()).toBe(3);
    expect((await h.rootEntries()).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('reports progress as bytes pass, at most every 100 ms, and once at the end', async () => {
    await store('progress');
    const reports: [number, number][] = [];
    // The clock stands still: after the first report, none until the end.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now());
    try {
      await restore('progress', { ...PARTS, onProgress: (w, t) => reports.push([w, t]) });
    } finally {
      vi.useRealTimers();
    }
    expect(reports).toHaveLength(2);
    expect(reports[0]![0]).toBeGreaterThan(0);
    expect(reports[0]![0]).toBeLessThan(SIZE);
    expect(reports[1]).toEqual([SIZE, SIZE]);
    // With a running clock, every report counts more bytes than the one before.
    const running: number[] = [];
    await restore('progress', { ...PARTS, onProgress: (w) => running.push(w) });
    expect(running.at(-1)).toBe(SIZE);
    for (let i = 1; i < running.length; i++) expect(running[i]!).toBeGreaterThanOrEqual(running[i - 1]!);
  });

  it('a range of a sealed segment is still exactly one ranged GET of its span, never the parts', async () => {
    await store('sealed-range');
    const range = { start: 5 * CHUNK + 10, end: 9 * CHUNK + 20 };
    let answer: unknown;
    const got = await ranges(async () => (answer = await fetchSegment(runtime, { dataspace: 'ds', segmentId: 'sealed-range', destination: `file://${join(h.root, 'sealed-range')}`, range }, PARTS)));
    expect(got).toEqual([`bytes=${HEADER + 5 * SEALED_CHUNK}-${HEADER + 9 * SEALED_CHUNK + CHUNK + TAG_SIZE - 1}`]);
    const expected = patternBytes(SIZE, 'sealed-range').subarray(range.start, range.end + 1);
    expect(answer).toMatchObject({ sha256: sha256(expected), bytesWritten: expected.length, size: SIZE });
    expect((await readFile(join(h.root, 'sealed-range'))).equals(expected)).toBe(true);
  });

  it.each([
    ['no bks-digest', false, PARTS, 'file'],
    ['one GET asked for', true, { ...PARTS, concurrency: 1 }, 'file'],
    ['rehash', true, { ...PARTS, rehash: true }, 'file'],
    ['an s3:// destination', true, PARTS, 's3'],
    ['an object of one part', true, { ...PARTS, partSize: 64 << 20 }, 'file'],
  ] as const)('is not used with %s: the object is read in order from its first byte', async (_what, sealed, options, kind) => {
    const segmentId = `ordered-${kind}-${sealed}-${options.concurrency}-${'rehash' in options}-${options.partSize}`;
    const stored = await store(segmentId, SIZE, sealed);
    h.servers.createBucket('parts-restored');
    const destination = kind === 'file' ? `file://${join(h.root, segmentId)}` : `s3://parts-restored/${segmentId}`;
    let answer: unknown;
    const got = await ranges(async () => (answer = await restore(segmentId, options, runtime, destination)));
    expect(got[0] === undefined || got[0].startsWith('bytes=0-')).toBe(true);
    expect(answer).toMatchObject({ sha256: stored.sha256, bytesWritten: SIZE });
  });

  it('a bks-digest of another segment does not open: read in order and hashed, the answer is the bytes’ own digest', async () => {
    const donor = await store('digest-donor');
    const stored = await store('digest-moved');
    const donorDigest = (await runtime.store.head(h.bucket, donor.key))?.metadata['bks-digest'];
    expect(donorDigest).toMatch(/^[A-Za-z0-9+/]{64}$/);
    await mutate(stored.key, (b) => b, (m) => ({ ...m, 'bks-digest': donorDigest ?? '' }));
    let answer: unknown;
    const got = await ranges(async () => (answer = await restore('digest-moved')));
    expect(got[0]).toBe(`bytes=0-${PART - 1}`);
    expect(answer).toMatchObject({ sha256: stored.sha256, bytesWritten: SIZE });
    expect((await readFile(join(h.root, 'digest-moved'))).equals(patternBytes(SIZE, 'digest-moved'))).toBe(true);
  });

  it('a tampered chunk in a later part → AuthenticationError at that chunk, no file', async () => {
    const stored = await store('tampered');
    const chunk = 13; // in the fifth part
    await mutate(stored.key, (b) => {
      const copy = Buffer.from(b);
      copy[HEADER + chunk * SEALED_CHUNK + 7]! ^= 0x01;
      return copy;
    });
    const err = await restore('tampered').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err).toMatchObject({ chunkIndex: chunk });
    await expectNothingLeft('tampered');
  });

  it('an object cut short at a chunk boundary → TruncatedError before the rename, no file', async () => {
    const stored = await store('short');
    // The HEAD's size still says whole (the object changes after it): the last part's GET comes back short.
    const cut: GetStore['get'] = async (ref, k, options) => {
      const body = await runtime.store.get(ref, k, options);
      const last = planParts(SIZE, CHUNK_LOG2, PART).at(-1)!;
      if (options?.range?.start !== last.cipherStart) return body;
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      return Readable.from([Buffer.concat(chunks).subarray(0, 2 * SEALED_CHUNK)]);
    };
    const ctx = { ...runtime, store: { head: runtime.store.head.bind(runtime.store), get: cut } };
    const err = await restore('short', PARTS, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedError);
    await expectNothingLeft('short');
    expect(stored.size).toBe(SIZE);
  });

  it('a bks-header that is not the object’s own: read in order from the first byte and hashed, as with one GET', async () => {
    const stored = await store('foreign-header');
    const other = await store('header-donor');
    const foreign = (await runtime.store.head(h.bucket, other.key))?.metadata['bks-header'] ?? '';
    // A digest sealed under the other header for this segment opens under bks-header: only the object's own first
    // 48 bytes tell that bks-header is not its header.
    const digest = sealDigest(key.master, parseHeader(Buffer.from(foreign, 'base64')), { dataspace: 'ds', segmentId: 'foreign-header' }, stored.sha256);
    await mutate(stored.key, (b) => b, (m) => ({ ...m, 'bks-header': foreign, 'bks-digest': digest }));
    let answer: unknown;
    const got = await ranges(async () => (answer = await restore('foreign-header')));
    expect(got).toEqual([`bytes=0-${HEADER - 1}`, `bytes=0-${PART - 1}`, ...got.slice(2)]);
    expect(answer).toMatchObject({ sha256: stored.sha256, bytesWritten: SIZE });
    expect((await readFile(join(h.root, 'foreign-header'))).equals(patternBytes(SIZE, 'foreign-header'))).toBe(true);
  });

  it('parts under a header that is not the object’s own fail every chunk (the header is every chunk’s associated data)', async () => {
    const stored = await store('parts-foreign');
    const other = await store('parts-donor');
    const foreign = parseHeader(Buffer.from((await runtime.store.head(h.bucket, other.key))?.metadata['bks-header'] ?? '', 'base64'));
    const span = { ref: h.bucket, key: stored.key, size: (await runtime.store.head(h.bucket, stored.key))?.size ?? 0, etag: undefined };
    const written: number[] = [];
    const file = {
      async writePart(body: Readable, position: number) {
        for await (const c of body) written.push(position, (c as Buffer).length);
        return 0;
      },
    };
    const err = await restorePartsToFile(file, { store: runtime.store, keyRing: runtime.keyRing, identity: { dataspace: 'ds', segmentId: 'parts-foreign' }, span, plaintextSize: SIZE, header: foreign, concurrency: 2, partSize: PART }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(written).toEqual([]);
  });

  it('stops when its signal aborts, leaving no file', async () => {
    await store('stopped');
    // Each part's body waits 200 ms; the stop comes at 60 ms, while the first three are in flight.
    const watched = watchedGets(200);
    const controller = new AbortController();
    const reason = new Error('deadline');
    setTimeout(() => controller.abort(reason), 60);
    const err = await restore('stopped', { ...PARTS, signal: controller.signal }, watched.ctx).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'AbortError' });
    expect(watched.started()).toBe(3);
    await expectNothingLeft('stopped');
  });
});
