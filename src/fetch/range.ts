/** Byte ranges of a restore: inclusive start..end inside the segment's plaintext. */
import { InvalidRangeError } from '../core/errors.ts';

/** Throws InvalidRangeError unless start..end (inclusive) lies inside a segment of `size` bytes. */
export function checkPlainRange(size: number, start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0) throw new InvalidRangeError(`range ${start}-${end}: start and end must be whole numbers ≥ 0`);
  if (start > end) throw new InvalidRangeError(`range ${start}-${end} is reversed: start must be ≤ end`);
  if (end >= size) throw new InvalidRangeError(`range ${start}-${end} ends past the segment's last byte (${size === 0 ? 'the segment is empty' : `${size - 1}; size ${size}`})`);
}

