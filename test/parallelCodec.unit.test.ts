/**
 * The CLI's file codec seals and opens chunks on worker threads (sealInParallel, openInParallel). These tests
 * hold it to the sequential codec: the same stored bytes as SealedBytes for every size and number of chunks in
 * flight, and, for any stored object whole, cut short or with a byte changed, the same plaintext released and
 * the same error (class and message) as the Decryptor.
 */
import fc from 'fast-check';
import { open, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ByteSource } from '../src/core/byteSource.ts';
import { TruncatedError } from '../src/core/errors.ts';
import { KeyRing } from '../src/core/keyRing.ts';
import { Secret } from '../src/core/secret.ts';
import { GcmThreads } from '../src/core/format/gcmThreads.ts';
import { Decryptor, HEADER_SIZE, openInParallel, SealedBytes, sealInParallel, TAG_SIZE } from '../src/core/format/index.ts';

const ID = { dataspace: 'logs', segmentId: 'parallel' };
const LOG2 = 16;
const CHUNK = 2 ** LOG2;
const SALT = Buffer.alloc(32, 7);
const ringP = KeyRing.fromSecrets(new Secret('parallel-codec-secret'), [], async (s) => s.reveal());

/** A ByteSource over `bytes`. */
function bytesSource(bytes: Buffer): ByteSource {
  let at = 0;
  return {
    async read(target) {
      const n = bytes.copy(target, 0, at);
      at += n;
      return n;
    },
  };
}

async function collect(pieces: AsyncIterable<Buffer>): Promise<{ bytes: Buffer; error?: Error }> {
  const out: Buffer[] = [];
  try {
    for await (const piece of pieces) out.push(Buffer.from(piece)); // a piece is valid only until the next is asked for
  } catch (err) {
    return { bytes: Buffer.concat(out), error: err as Error };
  }
  return { bytes: Buffer.concat(out) };
}

async function sealSequential(plain: Buffer): Promise<Buffer> {
  const r = await ringP;
  const sealed = new SealedBytes({ key: r.current!, identity: ID, chunkLog2: LOG2, salt: SALT, plaintext: bytesSource(plain), plaintextSize: plain.length });
  const out = Buffer.alloc(sealed.storedSize + 1);
  const n = await sealed.read(out);
  return out.subarray(0, n);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bks-parallel-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs `use` on a descriptor of a file holding `bytes` after `start` bytes of something else. */
let files = 0;
async function withFile<T>(bytes: Buffer, start: number, use: (fd: number) => Promise<T>): Promise<T> {
  const path = join(dir, `f${files++}`);
  await writeFile(path, Buffer.concat([Buffer.alloc(start, 0xee), bytes]));
  const handle = await open(path, 'r');
  try {
    return await use(handle.fd);
  } finally {
    await handle.close();
    await unlink(path);
  }
}

/** Runs `use` with `threads` cipher threads, closed after. */
async function withThreads<T>(threads: number, use: (gcm: GcmThreads) => Promise<T>): Promise<T> {
  const gcm = new GcmThreads(threads);
  try {
    return await use(gcm);
  } finally {
    await gcm.close();
  }
}

async function sealParallel(plain: Buffer, threads: number, plaintextSize = plain.length, start = 0): Promise<{ bytes: Buffer; error?: Error }> {
  const r = await ringP;
  return withFile(plain, start, (fd) => withThreads(threads, (gcm) => collect(sealInParallel({ key: r.current!, identity: ID, chunkLog2: LOG2, salt: SALT, file: { fd, start }, plaintextSize }, gcm))));
}

/** What the sequential reader releases from `stored` (its update then final), and how it fails. */
async function openSequential(stored: Buffer): Promise<{ bytes: Buffer; error?: Error }> {
  const decryptor = new Decryptor({ keyRing: await ringP, identity: ID });
  const out: Buffer[] = [];
  try {
    decryptor.update(stored, out);
    decryptor.final(out);
  } catch (err) {
    return { bytes: Buffer.concat(out), error: err as Error };
  }
  return { bytes: Buffer.concat(out) };
}

async function openParallel(stored: Buffer, threads: number, start = 0): Promise<{ bytes: Buffer; error?: Error }> {
  const keyRing = await ringP;
  return withFile(stored, start, (fd) => withThreads(threads, (gcm) => collect(openInParallel({ fd, start, size: stored.length }, { keyRing, identity: ID }, gcm))));
}

const plaintextOf = (size: number, seed: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff));
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5];

describe('sealInParallel', () => {
  it('stores the same bytes as SealedBytes, whatever the size and the threads', async () => {
    for (const size of SIZES) {
      const plain = plaintextOf(size, size);
      const expected = await sealSequential(plain);
      for (const threads of [1, 2, 4]) {
        const got = await sealParallel(plain, threads, plain.length, threads === 2 ? 7 : 0); // and from inside a file
        expect(got.error).toBeUndefined();
        expect(got.bytes.equals(expected), `size ${size}, ${threads} threads`).toBe(true);
      }
      // And the sequential reader opens it.
      expect((await openSequential(expected)).bytes.equals(plain)).toBe(true);
    }
  });

  it('fails with TruncatedError naming the chunk when the plaintext ends before its size', async () => {
    const plain = plaintextOf(2 * CHUNK + 10, 1);
    const got = await sealParallel(plain, 2, 3 * CHUNK);
    expect(got.error).toBeInstanceOf(TruncatedError);
    expect(got.error?.message).toBe(`plaintext ended inside chunk 2 (10 of ${CHUNK} bytes)`);
  });
});

describe('sealInParallel then openInParallel on the same threads', () => {
  it('makes the slots again for each file (the CLI starts the threads before it knows the chunk size)', async () => {
    const plain = plaintextOf(3 * CHUNK + 5, 9);
    const keyRing = await ringP;
    await withThreads(2, async (gcm) => {
      const stored = await withFile(plain, 0, (fd) => collect(sealInParallel({ key: keyRing.current!, identity: ID, chunkLog2: LOG2, salt: SALT, file: { fd, start: 0 }, plaintextSize: 10 }, gcm)));
      expect(stored.bytes.equals(await sealSequential(plain.subarray(0, 10)))).toBe(true);
      const whole = await sealSequential(plain);
      const opened = await withFile(whole, 0, (fd) => collect(openInParallel({ fd, start: 0, size: whole.length }, { keyRing, identity: ID }, gcm)));
      expect(opened.error).toBeUndefined();
      expect(opened.bytes.equals(plain)).toBe(true);
    });
  });
});

describe('openInParallel', () => {
  it('releases the plaintext of every size, whatever the threads', async () => {
    for (const size of SIZES) {
      const plain = plaintextOf(size, size + 1);
      const stored = await sealSequential(plain);
      for (const threads of [1, 2, 4]) {
        const got = await openParallel(stored, threads, threads === 2 ? 5 : 0);
        expect(got.error).toBeUndefined();
        expect(got.bytes.equals(plain), `size ${size}, ${threads} threads`).toBe(true);
      }
    }
  });

  it('cut anywhere or with any byte changed, releases what the Decryptor releases and fails as it fails', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4 * CHUNK }),
        fc.integer({ min: 1, max: 4 }),
        fc.oneof(fc.record({ cut: fc.double({ min: 0, max: 1, noNaN: true }) }), fc.record({ flip: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }) })),
        async (size, threads, damage) => {
          const stored = await sealSequential(plaintextOf(size, 3));
          let bytes = stored;
          if ('cut' in damage) bytes = stored.subarray(0, Math.floor(damage.cut * stored.length));
          else {
            bytes = Buffer.from(stored);
            const at = HEADER_SIZE + Math.floor(damage.flip * (stored.length - HEADER_SIZE));
            bytes[at] = (bytes[at] ?? 0) ^ 0x40;
          }
          const sequential = await openSequential(bytes);
          const parallel = await openParallel(bytes, threads);
          expect(parallel.error?.constructor).toBe(sequential.error?.constructor);
          expect(parallel.error?.message).toBe(sequential.error?.message);
          expect(parallel.bytes.equals(sequential.bytes)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('the edges: a stream cut at each chunk boundary, inside the header, or one tag after a full chunk', async () => {
    const stored = await sealSequential(plaintextOf(3 * CHUNK + 5, 9));
    const sealedChunk = CHUNK + TAG_SIZE;
    const cuts = [0, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + sealedChunk, HEADER_SIZE + 2 * sealedChunk, HEADER_SIZE + 3 * sealedChunk, HEADER_SIZE + 3 * sealedChunk + TAG_SIZE, HEADER_SIZE + sealedChunk + TAG_SIZE];
    for (const cut of cuts) {
      const bytes = stored.subarray(0, cut);
      const sequential = await openSequential(bytes);
      const parallel = await openParallel(bytes, 2);
      expect(sequential.error, `cut at ${cut}`).toBeDefined();
      expect(parallel.error?.message, `cut at ${cut}`).toBe(sequential.error?.message);
      expect(parallel.bytes.equals(sequential.bytes), `cut at ${cut}`).toBe(true);
    }
  });
});

describe('GcmThreads', () => {
  it('refuses a slot it does not have, and every job once closed', async () => {
    const gcm = new GcmThreads(1);
    gcm.setSlots(1024); // one thread: two slots
    const cipher = { key: Buffer.alloc(32, 1), nonce: Buffer.alloc(12), aad: Buffer.alloc(0) };
    await withFile(Buffer.alloc(100, 5), 0, async (fd) => {
      await expect(gcm.seal(2, { fd, position: 0, length: 100 }, cipher)).rejects.toThrow(new RangeError('slot 2 is not free (2 slots)'));
      const sealed = await gcm.seal(0, { fd, position: 0, length: 100 }, cipher);
      expect([sealed.read, sealed.output?.length]).toEqual([100, 100 + TAG_SIZE]);
      // A slot whose chunk is still in a thread is refused.
      const first = gcm.seal(1, { fd, position: 0, length: 100 }, cipher);
      await expect(gcm.seal(1, { fd, position: 0, length: 100 }, cipher)).rejects.toThrow(new RangeError('slot 1 is not free (2 slots)'));
      await first;
      // Past the end of the file: what was read, and no output.
      expect(await gcm.seal(1, { fd, position: 50, length: 100 }, cipher)).toEqual({ read: 50, output: undefined });
      const stored = Buffer.from(sealed.output ?? Buffer.alloc(0));
      await withFile(stored, 3, async (fd2) => {
        expect((await gcm.open(0, { fd: fd2, position: 3, length: stored.length }, cipher)).output?.equals(Buffer.alloc(100, 5))).toBe(true);
        expect(await gcm.open(0, { fd: fd2, position: 4, length: stored.length }, cipher)).toEqual({ read: stored.length - 1, output: undefined });
        expect(await gcm.open(0, { fd: fd2, position: 3, length: 10 }, cipher)).toEqual({ read: 10, output: undefined }); // shorter than a tag: refused without a thread
        expect(await gcm.open(0, { fd: fd2, position: 2, length: stored.length }, { ...cipher, nonce: Buffer.alloc(12, 1) })).toEqual({ read: stored.length, output: undefined });
      });
      // A read that fails is the thread's answer, with its code.
      await expect(gcm.seal(0, { fd: 987_654, position: 0, length: 10 }, cipher)).rejects.toMatchObject({ code: 'EBADF' });
    });
    await gcm.close();
    await expect(gcm.seal(0, { fd: 0, position: 0, length: 1 }, cipher)).rejects.toThrow('the cipher threads were closed');
  });
});
