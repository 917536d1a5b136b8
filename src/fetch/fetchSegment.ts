/**
 * The one restore function: a fetch invocation in, a fetch answer out.
 *
 *   1. check the identifiers and the destination (file:// inside the restore root, writable, not a directory;
 *      s3:// not one of the pipeline's own places) — no request yet. The invocation arrives typed: whoever
 *      takes it from outside parses it once with fetchInvocationSchema (the function's parser middleware, the
 *      restore CLI)
 *   2. locate: HEAD of the key in each registered bucket, current first (locate.ts)
 *   3. read: whole object (one GET, or a bounded pipeline of ranged GETs) or, for a byte range, exactly one
 *      ranged GET of the span that holds it (planRange; header from the bks-header metadata). A whole restore
 *      into a file with ranged GETs asked for, of an object whose bks-digest opens, is written in parts at their
 *      own offsets instead, each part deciphered on its own (partsToFile.ts): steps 3 to 5 there
 *   4. decrypt (format v1, key chosen by key id among current and previous keys; `plain` objects pass as they
 *      are, and while encryption is on only when written before it was turned on, plainObjects.ts), then verify
 *      size and, for `plain`, the stored SHA-256. The answer's sha256 is hashed from the plaintext, except for a
 *      whole restore of a v1 object whose bks-digest opens under the header it was read with (sealedDigest.ts):
 *      its tags prove the bytes are those the upload sealed, and checked against that digest
 *   5. write: the destination sees the end of its input only after every byte verified (destination.ts)
 *
 * A restore that fails at any step leaves nothing at the destination.
 */
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { IntegrityError, TruncatedError } from '../core/errors.ts';
import type { Runtime } from '../core/runtime.ts';
import { parseLocation } from '../core/locations.ts';
import type { FetchAnswer, FetchInvocation } from '../core/messages.ts';
import { formatSegmentKey, type SegmentIdentity } from '../core/objectKeys.ts';
import { expectedStoredSize } from '../core/objectMetadata.ts';
import { checkRange, createDecryptStream, parseHeader, planRange } from '../core/format/index.ts';
import { checkPlainObject } from '../core/plainObjects.ts';
import { openDestination, type PreparedDestination, type PutStore } from './destination.ts';
import { restorePartsToFile, storedHeaderIs } from './partsToFile.ts';
import { locateSegment, type HeadStore, type LocatedSegment } from './locate.ts';
import { readObjectRange, readWholeObject, type GetStore, type ObjectSpan } from './objectReader.ts';
import { VerifyingMeter } from '../core/verifyingMeter.ts';
import { openDigest } from '../core/sealedDigest.ts';
import { logger } from '../core/logger.ts';
import type { Header } from '../core/format/index.ts';

/** What a restore needs of the runtime (tests pass a store that wraps the real one). */
export type FetchRuntime = Pick<Runtime, 'config' | 'keyRing' | 'registry'> & {
  readonly store: HeadStore & GetStore;
  /** s3:// destinations are written with the function's role (never the data buckets' static keys). */
  readonly roleStore: PutStore;
};

export interface FetchOptions {
  /** Called as plaintext bytes pass, with the number of bytes the restore writes in all. */
  readonly onProgress?: (written: number, total: number) => void;
  /** Stops the restore (the fetch function: middy's deadline signal); it then fails leaving nothing. */
  readonly signal?: AbortSignal;
  /** Ranged GETs in flight for whole restores (default: S3_STORAGE_RESTORE_CONCURRENCY; 1 = one GET). */
  readonly concurrency?: number;
  /** Bytes per ranged GET for whole restores (default: S3_STORAGE_PART_SIZE_MIB). */
  readonly partSize?: number;
  /**
   * Hash the plaintext even where the object's bks-digest gives its SHA-256: for checks that must not rest on
   * the digest the upload sealed (restoreAndCheck, the smoke test). Restores by default answer the sealed one.
   */
  readonly rehash?: boolean;
}

/**
 * Restores one segment, or a byte range of it, to the invocation's destination.
 * @example
 *   const answer = await fetchSegment(await createRuntime(), { dataspace: 'logs', segmentId: 'seg-1', destination: 'file:///restore/seg-1' });
 */
export async function fetchSegment(runtime: FetchRuntime, invocation: FetchInvocation, options: FetchOptions = {}): Promise<FetchAnswer> {
  const identity: SegmentIdentity = { dataspace: invocation.dataspace, segmentId: invocation.segmentId };
  const key = formatSegmentKey(runtime.config.keyPrefix, identity);
  const location = parseLocation('destination', invocation.destination);
  const destination = await openDestination(location, runtime.config, runtime.roleStore, runtime.registry);
  try {
    options.signal?.throwIfAborted();
    const found = await locateSegment(runtime.store, runtime.registry, key);
    options.signal?.throwIfAborted();
    checkStoredSize(found);
    checkPlainObject(runtime.config, found, 'restore');
    const plan = invocation.range ? planRead(found, invocation.range) : undefined;
    const total = plan?.length ?? found.metadata.plaintextSize;
    const sealed = plan === undefined && options.rehash !== true ? found.metadata.digest : undefined;
    const inParts = sealed === undefined ? undefined : await partsPlan(runtime, found, identity, sealed, destination, options);
    if (inParts !== undefined) {
      const { writeParts, header, sha256, concurrency, partSize, span } = inParts;
      let written = 0;
      const report = options.onProgress === undefined ? undefined : throttled((bytes) => options.onProgress?.(bytes, total));
      await writeParts(async (file) => {
        written = await restorePartsToFile(file, {
          store: runtime.store,
          keyRing: runtime.keyRing,
          identity,
          span,
          plaintextSize: total,
          header,
          concurrency,
          partSize,
          signal: options.signal,
          ...(report ? { onBytes: report.bytes } : {}),
        });
        report?.end(written);
      }, options.signal);
      return { bucket: found.ref.bucket, region: found.ref.region, key, size: total, sha256, bytesWritten: written };
    }
    let known: string | undefined;
    const onHeader =
      sealed === undefined
        ? undefined
        : (header: Header) => {
            known = openDigest(runtime.keyRing.find(header.keyId).master, header, identity, sealed);
            // The bytes are still authenticated by their tags; only the shortcut is lost. Worth a look all the same.
            if (known === undefined) logger.warn('bks-digest does not open under the header read from the object: the restore hashes instead (metadata altered, or copied from another object?)', { bucket: found.ref.bucket, key });
          };
    const source = plan ? readRange(runtime, found, identity, plan, options) : readWhole(runtime, found, identity, options, onHeader);
    const meter = new VerifyingMeter({
      size: total,
      sha256: plan === undefined && found.metadata.format === 'plain' ? found.metadata.sha256 : undefined,
      ...(onHeader === undefined ? {} : { knownSha256: () => known }),
      what: `s3://${found.ref.bucket}/${key}${plan ? ` bytes ${invocation.range?.start}-${invocation.range?.end}` : ''}`,
    });
    const body = options.onProgress ? chain(source, meter, progress(meter, total, options.onProgress)) : chain(source, meter);
    await destination.write(body, options.signal);
    return { bucket: found.ref.bucket, region: found.ref.region, key, size: found.metadata.plaintextSize, sha256: meter.sha256, bytesWritten: meter.bytes };
  } finally {
    await destination.discard();
  }
}

/** What a whole restore written in parts needs (partsPlan). */
interface PartsPlan {
  readonly writeParts: NonNullable<PreparedDestination['writeParts']>;
  readonly header: Header;
  readonly sha256: string;
  readonly concurrency: number;
  readonly partSize: number;
  readonly span: ObjectSpan;
}

/** The stored object a located segment is, as the object reader reads it. */
function spanOf(found: LocatedSegment): ObjectSpan {
  return { ref: found.ref, key: found.key, size: found.info.size, etag: found.info.etag };
}

/**
 * How a whole restore is written in parts at their own offsets (partsToFile.ts), or undefined when it reads one
 * ordered stream: ranged GETs not asked for (concurrency 1), an object of one part, a destination that is not
 * a file, a bks-digest that does not open under the bks-header, or a bks-header that is not the header the
 * object begins with (its first 48 bytes, one small ranged GET). The stream path then opens the digest under
 * the header read from the object, or hashes, and says so: the same answer as with one GET.
 */
async function partsPlan(runtime: FetchRuntime, found: LocatedSegment, identity: SegmentIdentity, sealed: string, destination: PreparedDestination, options: FetchOptions): Promise<PartsPlan | undefined> {
  const { writeParts } = destination;
  const concurrency = options.concurrency ?? runtime.config.restoreConcurrency;
  const partSize = options.partSize ?? runtime.config.partSize;
  if (writeParts === undefined || concurrency <= 1 || found.info.size <= partSize || found.metadata.header === undefined) return undefined;
  const header = parseHeader(found.metadata.header);
  const sha256 = openDigest(runtime.keyRing.find(header.keyId).master, header, identity, sealed);
  if (sha256 === undefined) return undefined;
  const span = spanOf(found);
  if (!(await storedHeaderIs(runtime.store, span, header, options.signal))) return undefined;
  return { writeParts: writeParts.bind(destination), header, sha256, concurrency, partSize, span };
}

/** Progress of a restore in parts: reported at most 10 times a second, and once at the end. */
function throttled(report: (bytes: number) => void): { bytes: (bytes: number) => void; end: (bytes: number) => void } {
  let last = 0;
  return {
    bytes(bytes) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      report(bytes);
    },
    end: report,
  };
}

interface ReadPlan {
  readonly start: number;
  readonly end: number;
  readonly length: number;
}

function planRead(found: LocatedSegment, range: { start: number; end: number }): ReadPlan {
  checkRange(found.metadata.plaintextSize, range.start, range.end);
  return { start: range.start, end: range.end, length: range.end - range.start + 1 };
}

/** Refuses an object whose stored size disagrees with its metadata before any GET (restores, verify). */
export function checkStoredSize(found: LocatedSegment): void {
  const where = `s3://${found.ref.bucket}/${found.key}`;
  const expected = expectedStoredSize(found.metadata, where);
  const { size } = found.info;
  if (size < expected) throw new TruncatedError(`${where} holds ${size} bytes but its metadata promises ${expected} (bks-size ${found.metadata.plaintextSize}): it was truncated`);
  if (size > expected) throw new IntegrityError('size', String(expected), String(size), `${where} is longer than its metadata says`);
}

/**
 * The whole plaintext of a located object: one GET (or ranged GETs), decrypted unless `plain` (restores, verify).
 * `onHeader` sees a v1 object's header as it is read from the object, before any plaintext.
 */
export function readWhole(
  runtime: Pick<FetchRuntime, 'config' | 'keyRing'> & { readonly store: GetStore },
  found: LocatedSegment,
  identity: SegmentIdentity,
  options: FetchOptions,
  onHeader?: (header: Header) => void,
): Readable {
  const span = spanOf(found);
  const raw = readWholeObject(runtime.store, span, {
    concurrency: options.concurrency ?? runtime.config.restoreConcurrency,
    partSize: options.partSize ?? runtime.config.partSize,
    signal: options.signal,
  });
  if (found.metadata.format === 'plain') return raw;
  return chain(raw, createDecryptStream({ keyRing: runtime.keyRing, identity, plaintextSize: found.metadata.plaintextSize, ...(onHeader ? { onHeader } : {}) }));
}

function readRange(runtime: FetchRuntime, found: LocatedSegment, identity: SegmentIdentity, plan: ReadPlan, options: FetchOptions): Readable {
  const span = spanOf(found);
  const { metadata } = found;
  if (metadata.format === 'plain' || metadata.header === undefined) return readObjectRange(runtime.store, span, plan.start, plan.end, options.signal);
  const header = parseHeader(metadata.header);
  const chunks = planRange(metadata.plaintextSize, header.chunkLog2, plan.start, plan.end);
  const raw = readObjectRange(runtime.store, span, chunks.cipherStart, chunks.cipherEnd, options.signal);
  return chain(raw, createDecryptStream({ keyRing: runtime.keyRing, identity, plaintextSize: metadata.plaintextSize, header: header.raw, range: chunks }));
}

/**
 * Streams joined so that an error anywhere, or the consumer giving up, destroys every one of them (open GETs
 * included); the error reaches whoever reads the last stream.
 */
function chain(first: Readable, ...rest: Transform[]): Readable {
  return rest.reduce<Readable>((prev, next) => pipeline(prev, next, () => undefined), first);
}

/** A pass-through reporting progress at most 10 times a second, and once at the end. */
function progress(meter: VerifyingMeter, total: number, report: (written: number, total: number) => void): Transform {
  let last = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const now = Date.now();
      if (now - last >= 100) {
        last = now;
        report(meter.bytes, total);
      }
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      report(meter.bytes, total);
      done();
    },
  });
}
