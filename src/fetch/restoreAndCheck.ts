/**
 * A restore followed by a check of its answer against what the caller knows of the source: for `npm start`'s
 * demo and for operators' scripts ("restore this and prove it is what we stored").
 */
import { IntegrityError } from '../core/errors.ts';
import type { FetchAnswer, FetchInvocation } from '../core/messages.ts';
import { fetchSegment, type FetchOptions, type FetchRuntime } from './fetchSegment.ts';

export interface ExpectedBytes {
  /** Hex SHA-256 of the bytes the restore must write (the whole segment, or the range's slice). */
  readonly sha256: string;
  /** Bytes the restore must write. */
  readonly bytes: number;
}

/**
 * Restores `invocation` and throws IntegrityError unless the bytes written have the expected size and SHA-256
 * (computed from them, never taken from bks-digest).
 * @example
 *   await restoreAndCheck(runtime, { dataspace: 'demo', segmentId: 'seg-1', destination: 'file:///restore/seg-1' },
 *     { sha256: announced.sha256, bytes: announced.size });
 */
export async function restoreAndCheck(runtime: FetchRuntime, invocation: FetchInvocation, expected: ExpectedBytes, options: FetchOptions = {}): Promise<FetchAnswer> {
  // Hashed as written even when the object's bks-digest would answer: this check must not rest on the upload's.
  const answer = await fetchSegment(runtime, invocation, { ...options, rehash: true });
  const where = `restore to ${answer.key} from s3://${answer.bucket}`;
  if (answer.bytesWritten !== expected.bytes) throw new IntegrityError('size', String(expected.bytes), String(answer.bytesWritten), where);
  if (answer.sha256 !== expected.sha256) throw new IntegrityError('sha256', expected.sha256, answer.sha256, where);
  return answer;
}
