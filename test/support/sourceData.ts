/** Deterministic pseudo-random segment contents of any size, streamed (never held whole) or as a buffer. */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const BLOCK = 1 << 20;

function keystream(seed: string) {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
}

/** A stream of `size` bytes determined by `seed`. */
export function patternStream(size: number, seed: string): Readable {
  const cipher = keystream(seed);
  const zeros = Buffer.alloc(BLOCK);
  let left = size;
  return new Readable({
    highWaterMark: BLOCK,
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(BLOCK, left);
      left -= n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

/** The same bytes as patternStream(size, seed), in memory (small sizes only). */
export function patternBytes(size: number, seed: string): Buffer {
  return keystream(seed).update(Buffer.alloc(size));
}

/** SHA-256 (hex) and size of patternStream(size, seed), computed by streaming. */
export async function patternSha256(size: number, seed: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of patternStream(size, seed)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
