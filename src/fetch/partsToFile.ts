/**
 * A whole restore of a format v1 object into a file, in parts: each part is a ranged GET of whole chunks,
 * deciphered on its own (chunk i's nonce derives from i, so no part needs another's bytes) and written at its
 * own offset of the file, up to `concurrency` parts at once. No part waits for the one before it, and none is
 * held whole in memory: each streams through its stages' buffers (about 5 MiB: GET, decipher, write-behind,
 * writer) and holds one chunk's plaintext until its tag verified.
 *
 * Only when the answer's SHA-256 needs no pass over the bytes in order: the object's bks-digest opens under its
 * bks-header (sealedDigest.ts). Every chunk's tag then proves its bytes, its place (the nonce) and, for the last
 * chunk, that nothing follows. The header is read from the metadata and checked against the object's first 48
 * bytes before any part (storedHeaderIs); it is also every chunk's associated data, so one that differs fails
 * every chunk all the same. Restores that must hash (no digest, `rehash`, plain objects) and
 * s3:// destinations read one ordered stream instead (objectReader.ts).
 */
import type { Readable } from 'node:stream';
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { TruncatedError } from '../core/errors.ts';
import type { KeyRing } from '../core/keyRing.ts';
import type { SegmentIdentity } from '../core/objectKeys.ts';
import { createDecryptStream, HEADER_SIZE, planRange, TAG_SIZE, type Header, type RangePlan } from '../core/format/index.ts';
import type { FileParts } from './destination.ts';
import { readObjectRange, type GetStore, type ObjectSpan } from './objectReader.ts';

/**
 * The parts of a whole plaintext of `plaintextSize` bytes: whole chunks, as many as fit in `partSize` stored
 * bytes (at least one), in order. Each plan's cipherStart..cipherEnd is the part's ranged GET.
 */
export function planParts(plaintextSize: number, chunkLog2: number, partSize: number): RangePlan[] {
  const chunkSize = 2 ** chunkLog2;
  const perPart = Math.max(1, Math.floor(partSize / (chunkSize + TAG_SIZE))) * chunkSize;
  const parts: RangePlan[] = [];
  for (let start = 0; start < plaintextSize; start += perPart) parts.push(planRange(plaintextSize, chunkLog2, start, Math.min(plaintextSize, start + perPart) - 1));
  return parts;
}

export interface PartsRestore {
  readonly store: GetStore;
  readonly keyRing: KeyRing;
  readonly identity: SegmentIdentity;
  readonly span: ObjectSpan;
  readonly plaintextSize: number;
  /** The object's header, from its bks-header. */
  readonly header: Header;
  readonly concurrency: number;
  readonly partSize: number;
  readonly signal?: AbortSignal | undefined;
  /** Called with the plaintext bytes written so far in all, as they pass. */
  readonly onBytes?: (bytes: number) => void;
}

/**
 * True when the stored object begins with `header` (its bks-header): one ranged GET of its first 48 bytes. The
 * parts never read those bytes, so a body swapped under another upload's metadata, or a damaged header, is
 * found here, and the restore reads one ordered stream instead, as with one GET.
 */
export async function storedHeaderIs(store: GetStore, span: ObjectSpan, header: Header, signal: AbortSignal | undefined): Promise<boolean> {
  const chunks: Buffer[] = [];
  for await (const chunk of readObjectRange(store, span, 0, HEADER_SIZE - 1, signal)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).equals(header.raw);
}

/** Writes every part of the object into `file`; the plaintext bytes written (all of them, or it throws). */
export async function restorePartsToFile(file: FileParts, restore: PartsRestore): Promise<number> {
  const parts = planParts(restore.plaintextSize, restore.header.chunkLog2, restore.partSize);
  // An empty plaintext is one empty chunk, which a restore in parts would never open: the ordered stream reads it.
  if (parts.length === 0) throw new RangeError('restorePartsToFile: an empty segment is restored as one stream');
  const chunkSize = 2 ** restore.header.chunkLog2;
  let written = 0;
  await eachAtMost(parts.length, restore.concurrency, restore.signal, async (index, signal) => {
    const part = parts[index]!;
    const raw = readObjectRange(restore.store, restore.span, part.cipherStart, part.cipherEnd, signal);
    const decrypt = createDecryptStream({ keyRing: restore.keyRing, identity: restore.identity, plaintextSize: restore.plaintextSize, header: restore.header.raw, range: part });
    const counted = restore.onBytes === undefined ? [] : [counter((n) => restore.onBytes?.((written += n)))];
    const body = [decrypt, ...counted].reduce<Readable>((prev, next) => pipeline(prev, next, () => undefined), raw);
    const bytes = await file.writePart(body, part.firstChunk * chunkSize, signal);
    // The decipher already refuses a short part (TruncatedError); this guards the sum against any other gap.
    if (bytes !== part.length) throw new TruncatedError(`s3://${restore.span.ref.bucket}/${restore.span.key}: the part from plaintext byte ${part.firstChunk * chunkSize} wrote ${bytes} of ${part.length} bytes`);
    if (restore.onBytes === undefined) written += bytes;
  });
  return written;
}

/**
 * Runs `work` for 0..count-1, at most `limit` at once, in order of index. The first failure (or `outer`
 * aborting) aborts the signal every run gets; this settles only once every run started has settled, so nothing
 * still writes when the caller cleans up, and rejects with the first failure.
 */
export async function eachAtMost(count: number, limit: number, outer: AbortSignal | undefined, work: (index: number, signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { readonly error: unknown } | undefined;
  const worker = async () => {
    // A failure aborts the controller, so the signal alone says when to start no more.
    while (!controller.signal.aborted && next < count) {
      const index = next++;
      try {
        await work(index, controller.signal);
      } catch (error) {
        failure ??= { error };
        controller.abort(error);
      }
    }
  };
  try {
    outer?.throwIfAborted();
    await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  } finally {
    outer?.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure.error;
  outer?.throwIfAborted();
}

/** A pass-through reporting how many bytes each chunk brings. */
function counter(report: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      report(chunk.length);
      done(null, chunk);
    },
  });
}
