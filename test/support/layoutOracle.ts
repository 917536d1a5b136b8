/**
 * The inverse of ciphertextSize, for tests: which plaintext size a stored format v1 object holds. The code
 * never needs it (the plaintext size is in the object's metadata); the tests use it to check the layout from
 * the other side.
 */
import { HEADER_SIZE, TAG_SIZE } from '../../src/core/format/index.ts';

/** The plaintext size a stored object of `storedSize` bytes holds, or undefined when no plaintext has that size. */
export function plaintextSizeOf(storedSize: number, chunkLog2: number): number | undefined {
  const body = storedSize - HEADER_SIZE;
  if (body < TAG_SIZE) return undefined;
  const full = 2 ** chunkLog2 + TAG_SIZE;
  const whole = Math.floor(body / full);
  const rest = body % full;
  if (rest === 0) return whole * 2 ** chunkLog2;
  if (rest < TAG_SIZE + 1 && !(whole === 0 && rest === TAG_SIZE)) return undefined;
  return whole * 2 ** chunkLog2 + rest - TAG_SIZE;
}
