/**
 * AES-256-GCM of whole chunks of a file on worker threads: the CLI's encrypt and decrypt of a file use every
 * core (sealInParallel, openInParallel). A thread reads its chunk from the file itself, a piece at a time into
 * one small buffer of its own, and writes the result into a slot whose memory moves between threads rather than
 * being copied. It runs only the cipher, with the key, nonce and associated data it is handed: what they are is
 * ChunkCipher's (chunkCipher.ts), so the format stays in one place.
 *
 * Why: `perf record` of a 1 GiB encrypt (docs/DEVELOPMENT.md, goal 5) showed, with WebCrypto on libuv's pool,
 * copies at 12 % of all samples and WebCrypto's zeroing of its input copies at 10 %, beside 20 % for the cipher;
 * then, with our own threads, the kernel's copy of the file into 1 MiB buffers at 19 %: a read into a buffer
 * that is not in the CPU's cache costs about 3× one into a small buffer that stays there (`readSync` of the same
 * 1 GiB file, 0.47–0.79 s of system time into 1 MiB buffers against 0.14–0.16 s into one 64 or 128 KiB buffer).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TAG_SIZE, type GcmParams } from './chunkCipher.ts';

/** Bytes per read and per cipher update in a thread: a buffer this small stays in the core's cache. */
const THREAD_PIECE = 128 * 1024;

/**
 * The thread's code, plain JavaScript run with `eval` (so it loads the same way from the TypeScript sources,
 * the bundle and the tests). A job names a region of a file: a plaintext chunk to seal, or a stored chunk
 * (ciphertext then tag) to open; it brings the slot's output memory, which goes back with the answer. Answer:
 * the bytes read (fewer than asked when the file ended), the bytes written, or -1 when the tag does not verify;
 * or the read's error.
 */
const THREAD_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv } = require('node:crypto');
const { readSync } = require('node:fs');
const { pieceSize, tagSize } = workerData;
const piece = Buffer.allocUnsafe(pieceSize);
const tag = Buffer.allocUnsafe(tagSize);
parentPort.on('message', ({ id, open, fd, position, length, key, nonce, aad, outputMemory }) => {
  const output = Buffer.from(outputMemory);
  const body = open ? length - tagSize : length;
  let read = 0;
  let bytes = 0;
  try {
    const cipher = open ? createDecipheriv('aes-256-gcm', key, nonce) : createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(aad);
    for (let n = 1; read < body && n > 0; read += n) {
      n = readSync(fd, piece, 0, Math.min(pieceSize, body - read), position + read);
      bytes += cipher.update(piece.subarray(0, n)).copy(output, bytes);
    }
    if (open && read === body) {
      const got = readSync(fd, tag, 0, tagSize, position + body);
      read += got;
      if (got === tagSize) cipher.setAuthTag(tag);
    }
    if (read === length) {
      try {
        bytes += cipher.final().copy(output, bytes);
        if (!open) bytes += cipher.getAuthTag().copy(output, bytes);
      } catch {
        bytes = -1; // the tag did not verify
      }
    }
    parentPort.postMessage({ id, read, bytes, outputMemory }, [outputMemory]);
  } catch (err) {
    parentPort.postMessage({ id, error: { message: err.message, code: err.code }, outputMemory }, [outputMemory]);
  }
});
`;

interface Reply {
  readonly id: number;
  readonly read?: number;
  readonly bytes?: number;
  readonly error?: { readonly message: string; readonly code?: string };
  readonly outputMemory: ArrayBuffer;
}

/** A chunk's bytes in a file: `length` bytes at `position` of the open descriptor `fd`. */
export interface FileRegion {
  readonly fd: number;
  readonly position: number;
  readonly length: number;
}

/** What a thread did with a chunk: the bytes it read (fewer than the region's when the file ended first) and,
 *  when it read them all, the result in the slot (undefined when a stored chunk's tag does not verify). */
export interface ChunkResult {
  readonly read: number;
  readonly output: Buffer | undefined;
}

/** How many threads a file's codec starts by default: one per core, at most 4. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * `threads` workers that seal or open a chunk of a file into a slot, one of the output buffers (each a chunk
 * and a tag, two per thread) that `setSlots` makes: the workers start at once, the slots once the chunk size is
 * known (so the threads start while the caller still derives the key and reads the header). A slot's memory is
 * moved to the thread with the job and back with the answer (transferred: not copied, nor shared, since V8
 * copies into and out of shared memory with a slow atomic-safe copy). A caller reuses a slot once its promise settled and it is
 * done with the output.
 */
export class GcmThreads {
  #slots: ArrayBuffer[] = [];
  readonly #workers: Worker[];
  readonly #waiting = new Map<number, { slot: number; resolve: (reply: Reply) => void; reject: (err: Error) => void }>();
  #nextId = 0;
  #failure: Error | undefined;

  constructor(threads: number) {
    this.#workers = Array.from({ length: Math.max(1, threads) }, () => {
      const worker = new Worker(THREAD_CODE, { eval: true, workerData: { pieceSize: THREAD_PIECE, tagSize: TAG_SIZE } });
      worker.on('message', (reply: Reply) => this.#settle(reply));
      worker.on('error', (err) => this.#fail(err));
      worker.on('exit', (code) => this.#fail(new Error(`a cipher thread exited (code ${code}) with chunks still in it`)));
      return worker;
    });
  }

  /** Makes two slots per thread of `chunkBytes` and a tag each, in place of any before (none may be in a
   *  thread): one chunk in each thread and one waiting keeps every thread busy. */
  setSlots(chunkBytes: number): void {
    this.#slots = Array.from({ length: 2 * this.#workers.length }, () => new ArrayBuffer(chunkBytes + TAG_SIZE));
  }

  /** Seals the plaintext chunk in `region` into `slot`: the stored chunk (ciphertext, tag). */
  seal(slot: number, region: FileRegion, params: GcmParams): Promise<ChunkResult> {
    return this.#run(false, slot, region, params);
  }

  /** Opens the stored chunk (ciphertext, tag) in `region` into `slot`: its plaintext, or undefined if the tag
   *  does not verify. */
  async open(slot: number, region: FileRegion, params: GcmParams): Promise<ChunkResult> {
    if (region.length < TAG_SIZE) return { read: region.length, output: undefined }; // not even a tag: cannot verify
    return this.#run(true, slot, region, params);
  }

  /**
   * Starts each job of `jobs` on slot i % slots, at most `slots` in flight, and yields their results in order.
   * A slot is reused only after the result it held was yielded and the caller asked for the next one, so each
   * buffer yielded is valid until then. A job's failure is thrown when its turn comes.
   */
  async *inOrder(jobs: Iterable<(slot: number) => Promise<Buffer>>): AsyncGenerator<Buffer> {
    const pending: Promise<Buffer>[] = [];
    let index = 0;
    try {
      for (const job of jobs) {
        const result = job(index++ % this.#slots.length);
        result.catch(() => undefined); // handled where it is awaited; this only keeps an early failure from being "unhandled"
        pending.push(result);
        if (pending.length === this.#slots.length) yield await (pending.shift() ?? Promise.reject(new Error('no chunk pending')));
      }
      for (let next = pending.shift(); next !== undefined; next = pending.shift()) yield await next;
    } finally {
      await Promise.allSettled(pending);
    }
  }

  /** Stops every thread (a chunk still in one is abandoned). */
  async close(): Promise<void> {
    this.#failure ??= new Error('the cipher threads were closed');
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }

  async #run(open: boolean, slot: number, region: FileRegion, params: GcmParams): Promise<ChunkResult> {
    if (this.#failure !== undefined) throw this.#failure;
    const outputMemory = this.#slots[slot];
    if (outputMemory === undefined || outputMemory.byteLength === 0) throw new RangeError(`slot ${slot} is not free (${this.#slots.length} slots)`);
    const id = this.#nextId++;
    const worker = this.#workers[id % this.#workers.length];
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.#waiting.set(id, { slot, resolve, reject });
      worker?.postMessage({ id, open, ...region, key: params.key, nonce: params.nonce, aad: params.aad, outputMemory }, [outputMemory]);
    });
    if (reply.error !== undefined) throw Object.assign(new Error(reply.error.message), reply.error.code === undefined ? {} : { code: reply.error.code });
    const read = reply.read ?? 0;
    const bytes = reply.bytes ?? 0;
    return { read, output: read < region.length || bytes < 0 ? undefined : Buffer.from(reply.outputMemory, 0, bytes) };
  }

  #settle(reply: Reply): void {
    const waiting = this.#waiting.get(reply.id);
    this.#waiting.delete(reply.id);
    if (waiting === undefined) return;
    this.#slots[waiting.slot] = reply.outputMemory;
    waiting.resolve(reply);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const { reject } of this.#waiting.values()) reject(err);
    this.#waiting.clear();
  }
}
