/**
 * Part buffers kept from one upload to the next in the same process. A warm Lambda container runs upload after
 * upload: each allocated its own part buffers while the previous upload's still waited for a collection, so the
 * second upload of a container peaked a set of part buffers higher than the first (docs/DEVELOPMENT.md, "Cold
 * and warm invocations"). An upload takes its buffers here and gives them back only once it succeeded: every
 * request that read them has been answered. A failed upload's buffers are left to the collector: the socket
 * write of a cancelled request may still hold one.
 *
 * The pool never holds more buffers than uploads of this process once held at the same time, so it never
 * raises the peak; it holds buffers of one size, the part size in use (a change drops the others).
 */
const idle: Buffer[] = [];
let idleSize = 0;

/** A buffer of `size` bytes for a part: one an earlier upload gave back, or a new one (contents undefined). */
export function takePartBuffer(size: number): Buffer {
  if (size !== idleSize) {
    idle.length = 0;
    idleSize = size;
  }
  return idle.pop() ?? Buffer.allocUnsafeSlow(size);
}

/** Gives back the part buffers of an upload that succeeded (no request reads them any more). */
export function givePartBuffers(buffers: readonly Buffer[]): void {
  for (const buffer of buffers) if (buffer.length === idleSize && !idle.includes(buffer)) idle.push(buffer);
}

/** How many buffers wait for the next upload (tests). */
export function idlePartBuffers(): number {
  return idle.length;
}
