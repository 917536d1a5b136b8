/**
 * The restore's file writer (src/fetch/fileWriter.ts), with its writes on this thread and on libuv's pool
 * (src/fetch/writePlacement.ts): every byte lands in order whatever the chunk sizes (batches, a tail shorter
 * than a batch, empty chunks), a short writev goes on where it stopped, the file is fsynced only once every byte
 * is in it, and a failing write or fsync fails the stream. The pool's writes do not hold the event loop.
 */
import { closeSync, openSync, readFileSync, writev as fsWritev } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

/** At most this many bytes per writev (short writes), the writevs seen, and on which side (sync or pool). */
const writes = vi.hoisted(() => ({ cap: Number.POSITIVE_INFINITY, calls: 0, sizes: [] as number[], sync: 0, pool: 0 }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  /** The first `writes.cap` bytes of `buffers`. */
  const capped = (buffers: readonly NodeJS.ArrayBufferView[]): Buffer[] => {
    writes.calls++;
    let room = writes.cap;
    const out: Buffer[] = [];
    for (const b of buffers) {
      if (room <= 0) break;
      const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      out.push(buf.subarray(0, room));
      room -= Math.min(room, buf.length);
    }
    return out;
  };
  return {
    ...fs,
    writevSync(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position?: number | null): number {
      writes.sync++;
      const written = fs.writevSync(fd, capped(buffers), position ?? undefined);
      writes.sizes.push(written);
      return written;
    },
    writev(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number | null, cb: (err: NodeJS.ErrnoException | null, written: number) => void): void {
      writes.pool++;
      fs.writev(fd, capped(buffers), position, (err, written) => {
        if (!err) writes.sizes.push(written);
        cb(err, written);
      });
    },
  };
});

const { BATCH_BYTES, FileWriter } = await import('../src/fetch/fileWriter.ts');
const { writeOnPool, writeOnThisThread } = await import('../src/fetch/writePlacement.ts');
type WritevAt = import('../src/fetch/writePlacement.ts').WritevAt;
type WriterFile = ConstructorParameters<typeof FileWriter>[0];

/** A FileHandle's part the writer uses, over descriptor `fd`: its pool writev goes through the mocked fs.writev. */
function handle(fd: number, sync: () => Promise<void>): WriterFile {
  return {
    fd,
    sync,
    writev: <T extends readonly NodeJS.ArrayBufferView[]>(buffers: T, position?: number) =>
      new Promise<{ bytesWritten: number; buffers: T }>((resolve, reject) =>
        fsWritev(fd, [...buffers], position ?? null, (err, bytesWritten) => (err ? reject(err) : resolve({ bytesWritten, buffers }))),
      ),
  };
}

let dir: string;
let n = 0;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'bks-filewriter-'))));
afterAll(async () => rm(dir, { recursive: true, force: true }));
beforeEach(() => {
  writes.cap = Number.POSITIVE_INFINITY;
  writes.calls = 0;
  writes.sizes = [];
  writes.sync = 0;
  writes.pool = 0;
});

const patterned = (length: number, seed: number) => Buffer.from(Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff));

/** Writes `chunks` through a FileWriter into a new file; the file's bytes, the writer's count, and the file's size at each fsync. */
async function writeThrough(chunks: Buffer[], writev: WritevAt): Promise<{ bytes: Buffer; bytesWritten: number; sizesAtSync: number[] }> {
  const path = join(dir, `f${n++}`);
  const fd = openSync(path, 'wx');
  const sizesAtSync: number[] = [];
  const writer = new FileWriter(handle(fd, async () => void sizesAtSync.push(readFileSync(path).length)), writev);
  try {
    await pipeline(Readable.from(chunks), writer);
  } finally {
    closeSync(fd);
  }
  return { bytes: readFileSync(path), bytesWritten: writer.bytesWritten, sizesAtSync };
}

describe.each([
  { side: 'this thread', writev: writeOnThisThread, syncCalls: 1, poolCalls: 0 },
  { side: 'the pool', writev: writeOnPool, syncCalls: 0, poolCalls: 1 },
])('FileWriter, writes on $side', ({ writev, syncCalls, poolCalls }) => {
  it('writes every chunk in order, batches and a short tail alike, and fsyncs once at the end with every byte in the file', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: (BATCH_BYTES * 3) / 2 }), { maxLength: 12 }), async (sizes) => {
        const chunks = sizes.map((size, i) => patterned(size, i));
        const expected = Buffer.concat(chunks);
        const { bytes, bytesWritten, sizesAtSync } = await writeThrough(chunks, writev);
        expect(bytes.equals(expected)).toBe(true);
        expect(bytesWritten).toBe(expected.length);
        expect(sizesAtSync).toEqual([expected.length]);
      }),
      { numRuns: 40 },
    );
  });

  it('gathers small chunks into batches of BATCH_BYTES: one writev per batch, not one per chunk', async () => {
    const piece = 16 * 1024;
    const chunks = Array.from({ length: (4 * BATCH_BYTES) / piece }, (_, i) => patterned(piece, i));
    const { bytes } = await writeThrough(chunks, writev);
    expect(bytes.equals(Buffer.concat(chunks))).toBe(true);
    expect(writes.sizes).toEqual([BATCH_BYTES, BATCH_BYTES, BATCH_BYTES, BATCH_BYTES]);
    // Every writev on the side asked for, none on the other.
    expect([writes.sync, writes.pool]).toEqual([syncCalls * 4, poolCalls * 4]);
  });

  it('goes on where a short writev stopped, mid-buffer and across buffers', async () => {
    writes.cap = 1000; // a batch of 16 KiB pieces takes many writevs, most ending inside a piece
    const chunks = Array.from({ length: 40 }, (_, i) => patterned(16 * 1024 + i, i));
    const { bytes, bytesWritten } = await writeThrough(chunks, writev);
    expect(bytes.equals(Buffer.concat(chunks))).toBe(true);
    expect(bytesWritten).toBe(bytes.length);
    expect(writes.calls).toBeGreaterThan(bytes.length / 1000 - 1);
  });

  it('fails the stream with the write error (a descriptor not open for writing: EBADF), without fsyncing', async () => {
    const path = join(dir, `ro${n++}`);
    closeSync(openSync(path, 'wx'));
    const fd = openSync(path, 'r');
    let synced = false;
    try {
      const writer = new FileWriter(handle(fd, async () => void (synced = true)), writev);
      await expect(pipeline(Readable.from([patterned(BATCH_BYTES + 1, 1)]), writer)).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      closeSync(fd);
    }
    expect(synced).toBe(false);
  });

  it('fails the stream when the final fsync fails', async () => {
    const path = join(dir, `fs${n++}`);
    const fd = openSync(path, 'wx');
    try {
      const writer = new FileWriter(handle(fd, async () => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))), writev);
      await expect(pipeline(Readable.from([patterned(10, 1)]), writer)).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(path).length).toBe(10);
  });

  it('a writev that writes nothing is an error, not a loop', async () => {
    writes.cap = 0;
    await expect(writeThrough([patterned(10, 1)], writev)).rejects.toThrow(/writev wrote nothing of 10 bytes at offset 0/);
  });
});

describe('FileWriter with a write that waits (a file system stalled by its server)', () => {
  it('lets the event loop run meanwhile, holds the next batch back, and finishes once the write settles', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    const stalled: WritevAt = async (file, buffers, position) => {
      started++;
      await gate;
      return writeOnPool(file, buffers, position);
    };
    const path = join(dir, `stall${n++}`);
    const fd = openSync(path, 'wx');
    try {
      const chunks = [patterned(BATCH_BYTES, 1), patterned(BATCH_BYTES, 2), patterned(10, 3)];
      const done = pipeline(Readable.from(chunks), new FileWriter(handle(fd, async () => undefined), stalled));
      let timerRan = false;
      await new Promise<void>((resolve) => setTimeout(() => resolve(void (timerRan = true)), 20));
      expect(timerRan).toBe(true);
      expect(started).toBe(1); // the second batch waits for the first write
      release();
      await done;
      expect(readFileSync(path).equals(Buffer.concat(chunks))).toBe(true);
      expect(started).toBe(3);
    } finally {
      closeSync(fd);
    }
  });
});

describe('FileWriter destroyed while a write is pending (the restore failed or was stopped)', () => {
  it('writes no more once the pending write settles, even after a short write', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const shortThenMore: WritevAt = async () => {
      calls++;
      await gate;
      return 100; // a short write: the loop would go on with the rest
    };
    const path = join(dir, `destroyed${n++}`);
    const fd = openSync(path, 'wx');
    try {
      const stop = new AbortController();
      const writing = pipeline(Readable.from([patterned(BATCH_BYTES, 1)]), new FileWriter(handle(fd, async () => undefined), shortThenMore), { signal: stop.signal });
      await new Promise<void>((resolve) => setTimeout(resolve, 10));
      expect(calls).toBe(1);
      stop.abort();
      await expect(writing).rejects.toMatchObject({ name: 'AbortError' });
      release();
      await new Promise<void>((resolve) => setTimeout(resolve, 10));
      expect(calls).toBe(1);
    } finally {
      closeSync(fd);
    }
  });
});
