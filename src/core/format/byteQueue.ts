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
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let used = 0; // pieces copied whole: dropped at once, so many small pieces cost linear time, not quadratic
    while (filled < n) {
      const part = this.#parts[used];
      if (part === undefined) break; // not reached: the length was checked above
      const k = Math.min(part.length, n - filled);
      part.copy(out, filled, 0, k);
      filled += k;
      if (k === part.length) used++;
      else this.#parts[used] = part.subarray(k);
    }
    this.#parts.splice(0, used);
    return out;
  }

  /** Every byte held. */
  takeAll(): Buffer {
    return this.take(this.#length);
  }
}
