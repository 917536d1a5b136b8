/**
 * A FIFO of buffers that hands out exact-size slices: the writer cuts plaintext into chunks with it, the reader
 * cuts the stored object into header and chunks, whatever the sizes of the pieces a stream delivers.
 */
export class ByteQueue {
  readonly #parts: Buffer[] = [];
  #length = 0;

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  /** The next `n` bytes (a view when one piece holds them all, else one copy); RangeError if fewer are held. */
  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`ByteQueue: ${n} bytes asked, ${this.#length} held`);
    this.#length -= n;
    const first = this.#parts[0];
    if (first !== undefined && first.length >= n) return this.#takeFrom(first, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const part = this.#parts[0];
      if (part === undefined) break; // not reached: the length was checked above
      const piece = this.#takeFrom(part, Math.min(part.length, n - filled));
      piece.copy(out, filled);
      filled += piece.length;
    }
    return out;
  }

  /** Every byte held. */
  takeAll(): Buffer {
    return this.take(this.#length);
  }

  /** The first `n` bytes of `part`, the queue's first piece, which is consumed by as much. */
  #takeFrom(part: Buffer, n: number): Buffer {
    if (n === part.length) this.#parts.shift();
    else this.#parts[0] = part.subarray(n);
    return part.subarray(0, n);
  }
}
