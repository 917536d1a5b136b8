/**
 * AES-256-GCM of whole chunks on worker threads: the CLI's encrypt and decrypt of a file use every core, and a
 * chunk's memory moves between threads rather than being copied (sealInParallel, openInParallel). A thread
 * runs only the cipher, with the key, nonce and associated data it is handed: what they are is ChunkCipher's
 * (chunkCipher.ts), so the format stays in one place.
 *
 * Why threads of our own rather than WebCrypto on libuv's pool: WebCrypto copies each input, allocates each
 * output and zeroes its copy with OPENSSL_cleanse; `perf record` of a 1 GiB encrypt showed those copies and the
 * cleanse at 22 % of all CPU, beside 20 % for the cipher itself (docs/DEVELOPMENT.md, goal 5).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TAG_SIZE, type GcmParams } from './chunkCipher.ts';

/** Bytes per update in a thread: larger than chunkCipher.ts's CIPHER_PIECE, since a thread's allocator keeps
 *  outputs of this size for reuse; fewer calls cost less CPU (docs/DEVELOPMENT.md, goal 5). */
const THREAD_PIECE = 256 * 1024;

/**
 * The thread's code, plain JavaScript run with `eval` (so it loads the same way from the TypeScript sources,
 * the bundle and the tests). A job brings a slot's memory: the input holds the plaintext or the stored chunk
 * (ciphertext then tag), the output receives the other; both go back with the answer. Each update is
 * THREAD_PIECE bytes. Reply: the bytes written, or -1 when the tag does not verify.
 */
const THREAD_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv } = require('node:crypto');
const { piece, tagSize } = workerData;
parentPort.on('message', ({ id, open, length, key, nonce, aad, inputMemory, outputMemory }) => {
  const input = Buffer.from(inputMemory, 0, length);
  const output = Buffer.from(outputMemory);
  const body = open ? input.subarray(0, length - tagSize) : input;
  const cipher = open ? createDecipheriv('aes-256-gcm', key, nonce) : createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  if (open) cipher.setAuthTag(input.subarray(length - tagSize));
  let at = 0;
  for (let from = 0; from < body.length; from += piece) at += cipher.update(body.subarray(from, from + piece)).copy(output, at);
  try {
    at += cipher.final().copy(output, at);
    if (!open) at += cipher.getAuthTag().copy(output, at);
  } catch {
    at = -1; // the tag did not verify
  }
  parentPort.postMessage({ id, bytes: at, inputMemory, outputMemory }, [inputMemory, outputMemory]);
});
`;

interface Reply {
  readonly id: number;
  readonly bytes: number;
  readonly inputMemory: ArrayBuffer;
  readonly outputMemory: ArrayBuffer;
}

interface Slot {
  input: ArrayBuffer;
  output: ArrayBuffer;
}

/** How many threads a file's codec starts by default: one per core, at most 4. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * `slots` pairs of buffers (each a chunk and a tag) and `threads` workers that seal or open the chunk in a slot.
 * A slot's memory is moved to the thread with the job and back with the answer (transferred, not copied; not
 * shared either, since V8 copies into and out of shared memory with a slow atomic-safe copy). A caller fills
 * input(slot), calls seal or open, and reuses the slot once the promise settled and it is done with the output.
 */
export class GcmThreads {
  readonly #slots: Slot[];
  readonly #workers: Worker[];
  readonly #waiting = new Map<number, { slot: Slot; resolve: (bytes: number) => void; reject: (err: Error) => void }>();
  #nextId = 0;
  #failure: Error | undefined;

  constructor(threads: number, slots: number, chunkBytes: number) {
    this.#slots = Array.from({ length: slots }, () => ({ input: new ArrayBuffer(chunkBytes + TAG_SIZE), output: new ArrayBuffer(chunkBytes + TAG_SIZE) }));
    this.#workers = Array.from({ length: Math.max(1, threads) }, () => {
      const worker = new Worker(THREAD_CODE, { eval: true, workerData: { piece: THREAD_PIECE, tagSize: TAG_SIZE } });
      worker.on('message', (reply: Reply) => this.#settle(reply));
      worker.on('error', (err) => this.#fail(err));
      worker.on('exit', (code) => this.#fail(new Error(`a cipher thread exited (code ${code}) with chunks still in it`)));
      return worker;
    });
  }

  /** The buffer a chunk is put in before seal or open (its whole length: a chunk and a tag). */
  input(slot: number): Buffer {
    return Buffer.from(this.#slot(slot).input);
  }

  /** Seals the first `length` bytes of input(slot); resolves with the stored chunk (ciphertext, tag), in the slot's output. */
  async seal(slot: number, length: number, params: GcmParams): Promise<Buffer> {
    const bytes = await this.#run(false, slot, length, params);
    return Buffer.from(this.#slot(slot).output, 0, bytes);
  }

  /** Opens the stored chunk in the first `length` bytes of input(slot): its plaintext, in the slot's output, or undefined if the tag does not verify. */
  async open(slot: number, length: number, params: GcmParams): Promise<Buffer | undefined> {
    if (length < TAG_SIZE) return undefined;
    const bytes = await this.#run(true, slot, length, params);
    return bytes < 0 ? undefined : Buffer.from(this.#slot(slot).output, 0, bytes);
  }

  /** Stops every thread (a chunk still in one is abandoned). */
  async close(): Promise<void> {
    this.#failure ??= new Error('the cipher threads were closed');
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }

  #run(open: boolean, index: number, length: number, params: GcmParams): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const slot = this.#slot(index);
    const id = this.#nextId++;
    const worker = this.#workers[id % this.#workers.length];
    return new Promise<number>((resolve, reject) => {
      this.#waiting.set(id, { slot, resolve, reject });
      const { input: inputMemory, output: outputMemory } = slot;
      worker?.postMessage({ id, open, length, key: params.key, nonce: params.nonce, aad: params.aad, inputMemory, outputMemory }, [inputMemory, outputMemory]);
    });
  }

  #settle({ id, bytes, inputMemory, outputMemory }: Reply): void {
    const waiting = this.#waiting.get(id);
    this.#waiting.delete(id);
    if (waiting === undefined) return;
    waiting.slot.input = inputMemory;
    waiting.slot.output = outputMemory;
    waiting.resolve(bytes);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const { reject } of this.#waiting.values()) reject(err);
    this.#waiting.clear();
  }

  #slot(index: number): Slot {
    const slot = this.#slots[index];
    if (slot === undefined) throw new RangeError(`no slot ${index} (${this.#slots.length} slots)`);
    return slot;
  }
}
