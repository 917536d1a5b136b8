/**
 * Unit tests of the object reader against a scripted fake store: which GETs it issues (ranges, If-Match,
 * how many at once), how it resumes a body that breaks mid-way, which failures it gives up on, and how an
 * abort or an early exit reaches the parts in flight.
 */
import { getEventListeners, once } from 'node:events';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StorageError, TruncatedError } from '../src/core/errors.ts';
import type { GetOptions } from '../src/core/s3Store.ts';
import { readWholeObject, RESUME_ATTEMPTS, type GetStore, type ObjectSpan } from '../src/fetch/objectReader.ts';

interface Call {
  readonly range: { readonly start: number; readonly end: number } | undefined;
  readonly ifMatch: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly at: number;
}

type Handler = (call: Call, index: number) => Readable | Promise<Readable>;

function fakeStore(handler: Handler): { store: GetStore; calls: Call[] } {
  const calls: Call[] = [];
  const store: GetStore = {
    get: async (_ref, _key, options: GetOptions = {}) => {
      const call: Call = { range: options.range, ifMatch: options.ifMatch, signal: options.signal, at: performance.now() };
      calls.push(call);
      return handler(call, calls.length - 1);
    },
  };
  return { store, calls };
}

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251));
const spanOf = (size: number): ObjectSpan => ({ ref: { bucket: 'bkt', region: 'us-east-1' }, key: 'obj', size, etag: '"e1"' });
const slice = (data: Buffer, call: Call) => data.subarray(call.range?.start ?? 0, (call.range?.end ?? data.length - 1) + 1);
const body = (b: Buffer) => Readable.from([b]);
const econnreset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

/** A body that passes on `b`, then breaks with `err` instead of ending. */
function breaking(b: Buffer, err: Error): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(b);
      setImmediate(() => this.destroy(err));
    },
  });
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

const ranges = (calls: Call[]) => calls.map((c) => (c.range ? [c.range.start, c.range.end] : undefined));
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with the signal's reason when it aborts; never resolves otherwise. */
const pendingUntilAbort = (signal: AbortSignal | undefined) =>
  new Promise<Readable>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason as Error)));

describe('readWholeObject, one streaming GET', () => {
  it('reads an object no bigger than one part with one unranged GET carrying If-Match, even with concurrency > 1', async () => {
    const data = bytes(10);
    const { store, calls } = fakeStore((call) => body(slice(data, call)));
    const out = await collect(readWholeObject(store, spanOf(10), { concurrency: 4, partSize: 10 }));
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual([undefined]);
    expect(calls[0]?.ifMatch).toBe('"e1"');
  });

  it('resumes a body cut by ECONNRESET with a ranged GET from the first byte not passed on, after a backoff', async () => {
    const data = bytes(100);
    const { store, calls } = fakeStore((call, i) => (i === 0 ? breaking(data.subarray(0, 40), econnreset()) : body(slice(data, call))));
    const out = await collect(readWholeObject(store, spanOf(100), { concurrency: 1, partSize: 1000 }));
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual([undefined, [40, 99]]);
    expect(calls.map((c) => c.ifMatch)).toEqual(['"e1"', '"e1"']);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(90); // 50 × 2^1 ms
  });

  it.each([
    ['a message "aborted"', () => new Error('aborted')],
    ['a TimeoutError', () => Object.assign(new Error('timed out'), { name: 'TimeoutError' })],
    ['a retryable StorageError', () => new StorageError('GetObject', 'bkt', 'obj', 'slow down', { retryable: true })],
  ])('resumes after %s mid-body', async (_, make) => {
    const data = bytes(50);
    const { store, calls } = fakeStore((call, i) => (i === 0 ? breaking(data.subarray(0, 20), make()) : body(slice(data, call))));
    const out = await collect(readWholeObject(store, spanOf(50), { concurrency: 1, partSize: 1000 }));
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual([undefined, [20, 49]]);
  });

  it.each([
    ['a plain Error', () => new Error('boom')],
    ['a StorageError that is not retryable', () => new StorageError('GetObject', 'bkt', 'obj', 'denied', { retryable: false })],
  ])('does not resume after %s mid-body: the stream fails with it', async (_, make) => {
    const data = bytes(50);
    const err = make();
    const { store, calls } = fakeStore((call, i) => (i === 0 ? breaking(data.subarray(0, 20), err) : body(slice(data, call))));
    await expect(collect(readWholeObject(store, spanOf(50), { concurrency: 1, partSize: 1000 }))).rejects.toBe(err);
    expect(calls).toHaveLength(1);
  });

  it('resumes for the very last byte', async () => {
    const data = bytes(10);
    const { store, calls } = fakeStore((call, i) => (i === 0 ? breaking(data.subarray(0, 9), econnreset()) : body(slice(data, call))));
    const out = await collect(readWholeObject(store, spanOf(10), { concurrency: 1, partSize: 1000 }));
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual([undefined, [9, 9]]);
  });

  it('does not resume once every byte was passed on: the break is reported', async () => {
    const data = bytes(10);
    const err = econnreset();
    const { store, calls } = fakeStore((call, i) => (i === 0 ? breaking(data, err) : body(slice(data, call))));
    await expect(collect(readWholeObject(store, spanOf(10), { concurrency: 1, partSize: 1000 }))).rejects.toBe(err);
    expect(calls).toHaveLength(1);
  });

  it('does not resume after the caller aborted', async () => {
    const data = bytes(50);
    const ac = new AbortController();
    const err = econnreset();
    let first: Readable | undefined;
    const { store, calls } = fakeStore((call, i) => {
      if (i > 0) return body(slice(data, call));
      first = new Readable({ read() {} });
      first.push(data.subarray(0, 20));
      return first;
    });
    const stream = readWholeObject(store, spanOf(50), { concurrency: 1, partSize: 1000, signal: ac.signal });
    const done = collect(stream);
    while (calls.length === 0) await tick(1);
    await tick(5);
    ac.abort();
    first!.destroy(err);
    await expect(done).rejects.toBe(err);
    await tick(150);
    expect(calls).toHaveLength(1);
  });

  it('issues no further GET once the stream was destroyed, and destroys the body', async () => {
    const data = bytes(50);
    let first: Readable | undefined;
    const { store, calls } = fakeStore(() => {
      first = new Readable({ read() {} });
      first.push(data.subarray(0, 5));
      return first;
    });
    const stream = readWholeObject(store, spanOf(50), { concurrency: 1, partSize: 1000 });
    stream.on('error', () => undefined);
    stream.resume();
    await once(stream, 'data');
    stream.destroy();
    await tick(250);
    expect(first!.destroyed).toBe(true);
    expect(calls).toHaveLength(1);
  });

  it('destroys a body that arrives after the stream was destroyed', async () => {
    let release: (b: Readable) => void = () => undefined;
    const { store, calls } = fakeStore(() => new Promise<Readable>((resolve) => (release = resolve)));
    const stream = readWholeObject(store, spanOf(50), { concurrency: 1, partSize: 1000 });
    stream.on('error', () => undefined);
    stream.resume();
    while (calls.length === 0) await tick(1);
    stream.destroy();
    const late = new Readable({ read() {} });
    release(late);
    await tick(10);
    expect(late.destroyed).toBe(true);
  });

  it('issues one resume GET, not two, when the consumer reads during the backoff', async () => {
    const size = 3 << 20;
    const data = bytes(size);
    let first: Readable | undefined;
    const { store, calls } = fakeStore((call, i) => {
      if (i > 0) return body(slice(data, call));
      first = new Readable({ read() {} });
      first.push(data.subarray(0, 2 << 20)); // more than the reader's buffer: it pauses this body
      return first;
    });
    const stream = readWholeObject(store, spanOf(size), { concurrency: 1, partSize: size });
    stream.read(0);
    while (calls.length === 0) await tick(1);
    await tick(20);
    first!.destroy(econnreset());
    await tick(1);
    const out = await collect(stream);
    await tick(250); // past the backoff timer
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual([undefined, [2 << 20, size - 1]]);
  });
});

describe('readWholeObject, parts in order', () => {
  it(`keeps at most concurrency ranged GETs in flight and hands the parts on in order`, async () => {
    const data = bytes(95);
    const ac = new AbortController();
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { store, calls } = fakeStore(async (call, i) => {
      if (i === 0) await gate;
      else await tick(10 - i); // later parts answer sooner
      return body(slice(data, call));
    });
    const done = collect(readWholeObject(store, spanOf(95), { concurrency: 3, partSize: 10, signal: ac.signal }));
    await tick(30);
    expect(ranges(calls)).toEqual([
      [0, 9],
      [10, 19],
      [20, 29],
    ]);
    open();
    const out = await done;
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual(Array.from({ length: 10 }, (_, i) => [i * 10, Math.min(95, i * 10 + 10) - 1]));
    expect(calls.every((c) => c.ifMatch === '"e1"')).toBe(true);
    expect(calls.some((c) => c.signal?.aborted)).toBe(false); // nothing is aborted after a clean read
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('requests no more parts than the object has when concurrency exceeds them', async () => {
    const data = bytes(20);
    const { store, calls } = fakeStore((call) => body(slice(data, call)));
    const out = await collect(readWholeObject(store, spanOf(20), { concurrency: 4, partSize: 10 }));
    expect(out.equals(data)).toBe(true);
    expect(ranges(calls)).toEqual([
      [0, 9],
      [10, 19],
    ]);
  });

  it("passes each part on as the chunks its body came in, never joined into one Buffer per part", async () => {
    const data = bytes(40);
    // Every part's body comes in pieces of 4 bytes, as a socket delivers a large body.
    const { store } = fakeStore((call) => {
      const part = slice(data, call);
      return Readable.from(Array.from({ length: Math.ceil(part.length / 4) }, (_, i) => part.subarray(i * 4, i * 4 + 4)));
    });
    const sizes: number[] = [];
    const chunks: Buffer[] = [];
    for await (const chunk of readWholeObject(store, spanOf(40), { concurrency: 2, partSize: 20 })) {
      sizes.push((chunk as Buffer).length);
      chunks.push(chunk as Buffer);
    }
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(Math.max(...sizes)).toBe(4);
  });

  it('is a byte stream: read(n) returns n bytes', async () => {
    const data = bytes(30);
    const { store } = fakeStore((call) => body(slice(data, call)));
    const stream = readWholeObject(store, spanOf(30), { concurrency: 2, partSize: 10 });
    expect(stream.readableObjectMode).toBe(false);
    await once(stream, 'readable');
    const got = stream.read(3) as Buffer | null;
    expect(got).not.toBeNull();
    expect(got!.equals(data.subarray(0, 3))).toBe(true);
    stream.destroy();
  });

  it('retries a part whose body breaks, after a backoff', async () => {
    const data = bytes(30);
    const { store, calls } = fakeStore((call) => {
      const first = call.range?.start === 10 && calls.filter((c) => c.range?.start === 10).length === 1;
      return first ? breaking(data.subarray(10, 15), econnreset()) : body(slice(data, call));
    });
    const out = await collect(readWholeObject(store, spanOf(30), { concurrency: 2, partSize: 10 }));
    expect(out.equals(data)).toBe(true);
    const tries = calls.filter((c) => c.range?.start === 10);
    expect(ranges(tries)).toEqual([
      [10, 19],
      [10, 19],
    ]);
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(90); // 50 × 2^1 ms
  }, 5000);

  it('does not retry a part that failed for good', async () => {
    const data = bytes(30);
    const err = new StorageError('GetObject', 'bkt', 'obj', 'denied', { retryable: false });
    const { store, calls } = fakeStore((call) => {
      if (call.range?.start === 10 && calls.filter((c) => c.range?.start === 10).length === 1) throw err;
      return body(slice(data, call));
    });
    await expect(collect(readWholeObject(store, spanOf(30), { concurrency: 2, partSize: 10 }))).rejects.toBe(err);
    expect(calls.filter((c) => c.range?.start === 10)).toHaveLength(1);
  });

  it(`gives up on a part after ${RESUME_ATTEMPTS} retries`, async () => {
    const data = bytes(30);
    const { store, calls } = fakeStore((call) =>
      call.range?.start === 10 ? breaking(data.subarray(10, 12), econnreset()) : body(slice(data, call)),
    );
    await expect(collect(readWholeObject(store, spanOf(30), { concurrency: 2, partSize: 10 }))).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(calls.filter((c) => c.range?.start === 10)).toHaveLength(RESUME_ATTEMPTS + 1);
  }, 8000);

  it('reports a part that comes back short as truncated', async () => {
    const data = bytes(30);
    const { store, calls } = fakeStore((call) => (call.range?.start === 10 ? body(data.subarray(10, 15)) : body(slice(data, call))));
    const failure = collect(readWholeObject(store, spanOf(30), { concurrency: 2, partSize: 10 }));
    await expect(failure).rejects.toBeInstanceOf(TruncatedError);
    await expect(failure).rejects.toThrow('s3://bkt/obj: bytes 10-19 came back as 5 bytes');
    expect(calls.filter((c) => c.range?.start === 10)).toHaveLength(1); // a short object is not retried
  });

  it("passes the caller's abort on to the parts in flight", async () => {
    const ac = new AbortController();
    const { store, calls } = fakeStore((call) => pendingUntilAbort(call.signal));
    const done = collect(readWholeObject(store, spanOf(40), { concurrency: 2, partSize: 10, signal: ac.signal }));
    done.catch(() => undefined);
    while (calls.length < 2) await tick(1);
    const reason = new Error('user stop');
    ac.abort(reason);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(calls.map((c) => c.signal?.aborted)).toEqual([true, true]);
    expect(calls[0]?.signal?.reason).toBe(reason);
    await expect(done).rejects.toBe(reason);
  }, 5000);

  it('aborts the parts still in flight when the consumer stops early', async () => {
    const data = bytes(50);
    const { store, calls } = fakeStore((call, i) => (i === 0 ? body(slice(data, call)) : pendingUntilAbort(call.signal)));
    const stream = readWholeObject(store, spanOf(50), { concurrency: 3, partSize: 10 });
    await once(stream, 'readable');
    stream.destroy();
    await once(stream, 'close');
    await tick(5);
    const later = calls.slice(1);
    expect(later.length).toBeGreaterThan(0);
    expect(later.map((c) => c.signal?.aborted)).toEqual(later.map(() => true));
    expect((later[0]?.signal?.reason as Error).message).toBe('restore stopped');
  }, 5000);

  it('aborts the parts in flight when the consumer stops midway through a part of several chunks', async () => {
    const data = bytes(50);
    // The first part comes in five chunks of 2 bytes; the later ones stall until aborted.
    const { store, calls } = fakeStore((call, i) =>
      i === 0 ? Readable.from(Array.from({ length: 5 }, (_, k) => slice(data, call).subarray(k * 2, k * 2 + 2))) : pendingUntilAbort(call.signal),
    );
    const stream = readWholeObject(store, spanOf(50), { concurrency: 3, partSize: 10 });
    const first: Buffer[] = [];
    for await (const chunk of stream) {
      first.push(chunk as Buffer);
      if (first.length === 2) break; // stops after 4 of the part's 10 bytes: for-await destroys the stream
    }
    await tick(5);
    expect(Buffer.concat(first).equals(data.subarray(0, 4))).toBe(true);
    // Parts 2 and 3, and part 4, launched once the first arrived: every one of them stopped.
    const later = calls.slice(1);
    expect(later.length).toBe(3);
    expect(later.map((c) => c.signal?.aborted)).toEqual([true, true, true]);
  }, 5000);

  it('aborts the parts in flight at once when the consumer stops while a part is awaited, not once it arrives', async () => {
    // Every part stalls until aborted: the reader is waiting for the first one when the consumer stops.
    const { store, calls } = fakeStore((call) => pendingUntilAbort(call.signal));
    const stream = readWholeObject(store, spanOf(50), { concurrency: 3, partSize: 10 });
    stream.resume();
    while (calls.length < 3) await tick(1);
    stream.destroy();
    await once(stream, 'close');
    await tick(5);
    expect(calls.map((c) => c.signal?.aborted)).toEqual([true, true, true]);
    expect((calls[0]?.signal?.reason as Error).message).toBe('restore stopped');
  }, 5000);
});
