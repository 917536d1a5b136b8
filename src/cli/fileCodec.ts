/**
 * encrypt and decrypt when stdin is a regular file: chunks are read, by position from the file's start, and
 * sealed or opened on one worker thread per core (src/core/format/gcmThreads.ts); the output goes to stdout
 * with no stream in between (a file read through process.stdin comes in 64 KiB chunks, each a fresh buffer):
 * pieces of 256 KiB and more as they are, smaller ones (the header, small chunks) gathered into 4 MiB blocks.
 * The format and the checks are the codec's own (sealInParallel, openInParallel): only the plumbing differs
 * from the stream path, which pipes and terminals take.
 */
import { fstatSync, readSync } from 'node:fs';
import { IntegrityError } from '../core/errors.ts';
import { defaultThreads, GcmThreads, openInParallel, sealInParallel, type DecryptOptions, type SealOptions } from '../core/format/index.ts';

const BLOCK = 4 * 1024 * 1024;

/** The size of the file behind descriptor `fd`, or undefined when it is not a regular file (a pipe, a terminal). */
export function regularFileSize(fd: number): number | undefined {
  try {
    const info = fstatSync(fd);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

/** Writes blocks to a stream, two in turn: a block is reused only once the stream has taken it. */
class BlockWriter {
  readonly #out: NodeJS.WritableStream;
  readonly #free: Buffer[] = [Buffer.allocUnsafe(BLOCK), Buffer.allocUnsafe(BLOCK)];
  readonly #writing: Promise<void>[] = [];
  #current: Buffer | undefined;
  #filled = 0;

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  /** A free block to fill (waits for the oldest write when both are out). */
  async block(): Promise<Buffer> {
    while (this.#free.length === 0) await this.#writing.shift();
    return this.#free.pop() ?? Buffer.allocUnsafe(BLOCK);
  }

  /** Writes the first `length` bytes of `block` (from block()) and gives the block back once written. */
  send(block: Buffer, length: number): void {
    this.#writing.push(
      new Promise<void>((resolve, reject) => {
        this.#out.write(block.subarray(0, length), (err) => {
          this.#free.push(block);
          if (err) reject(err);
          else resolve();
        });
      }),
    );
  }

  /** Copies `bytes` into the current block, sending each block as it fills. */
  async copy(bytes: Buffer): Promise<void> {
    for (let offset = 0; offset < bytes.length; ) {
      this.#current ??= await this.block();
      const n = bytes.copy(this.#current, this.#filled, offset);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#current.length) this.#flush();
    }
  }

  /** Writes `bytes` as they are, after what copy() holds, and resolves once the stream has taken them (so the
   *  caller may reuse `bytes`): a chunk of 1 MiB goes out without being copied. */
  async write(bytes: Buffer): Promise<void> {
    this.#flush();
    this.#writing.push(new Promise<void>((resolve, reject) => this.#out.write(bytes, (err) => (err ? reject(err) : resolve()))));
    while (this.#writing.length > 0) await this.#writing.shift();
  }

  /** Waits for the writes already sent, whatever their outcome (before a failure is reported). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.#writing.splice(0));
  }

  /** Sends what copy() holds and waits until every block is written. */
  async end(): Promise<void> {
    this.#flush();
    while (this.#writing.length > 0) await this.#writing.shift();
  }

  #flush(): void {
    if (this.#current === undefined || this.#filled === 0) return;
    this.send(this.#current, this.#filled);
    this.#current = undefined;
    this.#filled = 0;
  }
}

/**
 * Runs `work` with one cipher thread per core (at most 4), started at once, and stops them after it: `work` does
 * its own set-up first (it derives the key: scrypt, 67–82 ms here) while the threads start (85–98 ms to a first
 * answer), rather than one after the other (`node --cpu-prof` of an encrypt of a 1-byte file, 2026-11-30).
 */
export async function withCipherThreads<T>(work: (threads: GcmThreads) => Promise<T>): Promise<T> {
  const threads = new GcmThreads(defaultThreads());
  try {
    return await work(threads);
  } finally {
    await threads.close();
  }
}

/** Seals the file on `fd` (its `size` bytes, read by position from its start) to `out`, chunks sealed on the
 *  cipher threads; IntegrityError when the file grew meanwhile. */
export async function sealFile(fd: number, size: number, options: Omit<SealOptions, 'plaintext' | 'plaintextSize'>, out: NodeJS.WritableStream, threads: GcmThreads): Promise<void> {
  await writeAll(sealInParallel({ ...options, file: { fd, start: 0 }, plaintextSize: size }, threads), out);
  if (readSync(fd, Buffer.alloc(1), 0, 1, size) > 0) throw new IntegrityError('size', String(size), `more than ${size} bytes`, 'stdin');
}

/** Opens the file on `fd` (format v1, its `size` bytes, read by position from its start) to `out`, chunks
 *  opened on the cipher threads; only verified chunks are written. */
export async function openFile(fd: number, size: number, options: Pick<DecryptOptions, 'keyRing' | 'identity'>, out: NodeJS.WritableStream, threads: GcmThreads): Promise<void> {
  await writeAll(openInParallel({ fd, start: 0, size }, options, threads), out);
}

/** Pieces this large are written as they are; smaller ones are gathered into 4 MiB blocks. */
const WRITE_AS_IS = 256 * 1024;

/** Writes every buffer of `pieces` to `out` (each is valid only until the next is asked for); a failure is
 *  reported once no write is under way (decrypt then cuts its output file back). */
async function writeAll(pieces: AsyncIterable<Buffer>, out: NodeJS.WritableStream): Promise<void> {
  const writer = new BlockWriter(out);
  try {
    for await (const piece of pieces) await (piece.length >= WRITE_AS_IS ? writer.write(piece) : writer.copy(piece));
    await writer.end();
  } finally {
    await writer.settle();
  }
}
