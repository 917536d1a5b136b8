/**
 * The restore's file writer: the plaintext goes into the open file with writev, a batch at a time, and the file
 * is fsynced at the end unless the caller does that itself (a file destination syncs once, after every writer
 * and its write-behind settled: destination.ts). On a local file system the writev runs on the thread that produced the bytes, while the
 * batch is still in that core's cache; on others on libuv's pool (writePlacement.ts chooses). The caller owns
 * the handle (and closes it).
 *
 * Why not fs.WriteStream: it writes on a libuv pool thread, so the kernel's copy of each batch into the page
 * cache ran on the other core, reading bytes this core had just deciphered and hashed. `perf record` of a 1 GiB
 * restore from s3rver put 27.6 % of its CPU in that copy (`copy_folio_from_iter_atomic`); written here, 3.4 %
 * (docs/DEVELOPMENT.md, "The restore's file writes"). The price: each writev blocks the event loop while the
 * kernel copies one batch (BATCH_BYTES) into the page cache, which is why only local file systems get it.
 */
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { writeOnThisThread, type WritableFile, type WritevAt } from './writePlacement.ts';

/** Bytes gathered per writev: small enough to be still in the core's cache (2 MiB of L2 here) when written. */
export const BATCH_BYTES = 256 * 1024;

export interface FileWriterOptions {
  /** File offset of the first byte (default 0): a part of a restore written in parts (partsToFile.ts). */
  readonly start?: number;
  /** fsync the file at the end (default true); false when the caller syncs it once every write ended. */
  readonly sync?: boolean;
}

export class FileWriter extends Writable {
  readonly #file: WritableFile & Pick<FileHandle, 'sync'>;
  readonly #writev: WritevAt;
  readonly #start: number;
  readonly #sync: boolean;
  #batch: Buffer[] = [];
  #batchBytes = 0;
  /** Where the next byte goes (positional writes: the handle's own offset is not relied on). */
  #position: number;

  constructor(file: WritableFile & Pick<FileHandle, 'sync'>, writev: WritevAt = writeOnThisThread, options: FileWriterOptions = {}) {
    super({ highWaterMark: BATCH_BYTES });
    this.#file = file;
    this.#writev = writev;
    this.#start = options.start ?? 0;
    this.#sync = options.sync ?? true;
    this.#position = this.#start;
  }

  /** Bytes this writer wrote to the file so far. */
  get bytesWritten(): number {
    return this.#position - this.#start;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    // Kept until the batch is full: a Writable's chunk is the stream's once written (its producer must not reuse it).
    // A chunk larger than a batch (a whole part of a plain object read in ranged parts) is written whole.
    this.#batch.push(chunk);
    this.#batchBytes += chunk.length;
    if (this.#batchBytes < BATCH_BYTES) {
      done();
      return;
    }
    this.#writeBatch().then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#writeBatch()
      .then(() => (this.#sync ? this.#file.sync() : undefined))
      .then(() => done(), done);
  }

  /**
   * Writes the gathered batch to its end (a short writev continues where it stopped). On this thread the first
   * writev runs before this returns, while the batch is still in the core's cache.
   */
  async #writeBatch(): Promise<void> {
    let buffers = this.#batch;
    let left = this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    while (left > 0) {
      // A stream destroyed meanwhile (the restore failed or was stopped) writes no more: its file is closing.
      if (this.destroyed) throw new Error(`the restore stopped with ${left} bytes not written at offset ${this.#position}`);
      const written = await this.#writev(this.#file, buffers, this.#position);
      if (written === 0) throw new Error(`writev wrote nothing of ${left} bytes at offset ${this.#position}`);
      this.#position += written;
      left -= written;
      if (left > 0) buffers = rest(buffers, written);
    }
  }
}

/** `buffers` without their first `skip` bytes, where 0 < skip < their total (a short writev wrote `skip`). */
function rest(buffers: readonly Buffer[], skip: number): Buffer[] {
  let i = 0;
  let at = skip;
  while (at >= buffers[i]!.length) at -= buffers[i++]!.length;
  return [buffers[i]!.subarray(at), ...buffers.slice(i + 1)];
}
