/**
 * `bucket-storage verify`: is what is stored still intact? For one segment, a dataspace, or every segment in
 * the registered buckets, and optionally against the list of segments that must exist (`expected`):
 *
 *   metadata  existence (the listing, or a lookup for one segment), size (the listing's, against the size the
 *             bks-* metadata promises), the format header and that its key id is known (HEAD; no body read).
 *             HEADs run in parallel, `concurrency` at a time.
 *   full      (the default) the above, then every object is read whole through the restore path (fetch's
 *             reader, src/core/format's decrypt stream and the verifying meter) into a sink: every chunk
 *             authenticated, or the SHA-256 of a `plain` object checked. Memory: `concurrency` objects × about
 *             two chunks, whatever their size.
 *
 * Findings are `missing` (expected, in no bucket), `corrupt` (wrong size, bad header, a chunk that fails
 * authentication, a wrong digest) or `unreadable` (unknown key id, no bucket-storage metadata, S3 refused).
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AuthenticationError, IntegrityError, MalformedHeaderError, StorageError, TruncatedError, UnknownKeyIdError } from '../core/errors.ts';
import { decodeObjectMetadata } from '../core/objectMetadata.ts';
import { formatSegmentKey, parseSegmentKey, type SegmentIdentity } from '../core/objectKeys.ts';
import type { Runtime } from '../core/runtime.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';
import { parseHeader } from '../core/format/index.ts';
import { VerifyingMeter } from '../core/verifyingMeter.ts';
import { checkStoredSize, readWhole } from '../fetch/fetchSegment.ts';
import type { LocatedSegment } from '../fetch/locate.ts';

export type FindingKind = 'missing' | 'corrupt' | 'unreadable';

export interface Finding {
  readonly kind: FindingKind;
  readonly identity: SegmentIdentity;
  /** `s3://bucket/key`, or the key alone when it is in no bucket. */
  readonly where: string;
  readonly reason: string;
}

export interface VerifyOptions {
  /** HEAD only: no object body is read. */
  readonly metadataOnly: boolean;
  /** Only this dataspace (and, with `segmentId`, only this segment). */
  readonly dataspace?: string | undefined;
  readonly segmentId?: string | undefined;
  /** Segments that must exist: each one in no registered bucket is `missing`. */
  readonly expected?: readonly SegmentIdentity[] | undefined;
  /** Objects checked at once (default 32 for metadata, 4 for full reads). */
  readonly concurrency?: number;
  /** Called as objects are checked. */
  readonly onProgress?: (progress: VerifyProgress) => void;
}

export interface VerifyProgress {
  readonly checked: number;
  readonly total: number;
  /** Stored bytes read so far (full verification). */
  readonly bytesRead: number;
  readonly findings: number;
}

export interface VerifyReport {
  readonly checked: number;
  readonly bytesRead: number;
  readonly buckets: number;
  readonly findings: readonly Finding[];
}

export type VerifyRuntime = Pick<Runtime, 'config' | 'keyRing' | 'registry'> & { readonly store: Pick<S3Store, 'head' | 'get' | 'list'> };

/** One stored object to check. */
interface Candidate {
  readonly ref: BucketRef;
  readonly key: string;
  readonly identity: SegmentIdentity;
  /** Stored size as the listing gave it (undefined for a single-segment lookup, which HEADs). */
  readonly listedSize: number | undefined;
}

/** Verifies; resolves to the report (findings included), rejects only when a bucket cannot be listed. */
export async function verifySegments(runtime: VerifyRuntime, options: VerifyOptions): Promise<VerifyReport> {
  const buckets = await runtime.registry.searchOrder();
  const findings: Finding[] = [];
  let listed = 0;
  let checked = 0;
  let bytesRead = 0;
  const limit = options.concurrency ?? (options.metadataOnly ? 32 : 4);
  const check = async (c: Candidate) => {
    const finding = await checkOne(runtime, c, options.metadataOnly, (n) => {
      bytesRead += n;
    });
    if (finding !== undefined) findings.push(finding);
    checked++;
    options.onProgress?.({ checked, total: listed, bytesRead, findings: findings.length });
  };
  if (options.segmentId !== undefined && options.dataspace !== undefined) {
    const one = await lookupOne(runtime, buckets, { dataspace: options.dataspace, segmentId: options.segmentId });
    listed = one === undefined ? 0 : 1;
    if (one === undefined) findings.push(missingFinding(runtime, { dataspace: options.dataspace, segmentId: options.segmentId }, buckets));
    else await check(one);
  } else {
    // Page by page: memory holds one listing page (and the expected keys not yet seen), whatever the bucket's size.
    const expected = new Map((options.expected ?? []).filter((e) => options.dataspace === undefined || e.dataspace === options.dataspace).map((e) => [formatSegmentKey(runtime.config.keyPrefix, e), e]));
    for (const ref of buckets) {
      for await (const page of candidatesIn(runtime, ref, options.dataspace)) {
        listed += page.length;
        for (const c of page) expected.delete(c.key);
        await inParallel(page, limit, check);
      }
    }
    for (const e of expected.values()) findings.push(missingFinding(runtime, e, buckets));
  }
  return { checked, bytesRead, buckets: buckets.length, findings: findings.sort((a, b) => a.where.localeCompare(b.where)) };
}

/** One segment: its copy in the first registered bucket that holds it (current first), like a restore. */
async function lookupOne(runtime: VerifyRuntime, buckets: readonly BucketRef[], identity: SegmentIdentity): Promise<Candidate | undefined> {
  const key = formatSegmentKey(runtime.config.keyPrefix, identity);
  for (const ref of buckets) {
    if ((await runtime.store.head(ref, key)) !== undefined) return { ref, key, identity, listedSize: undefined };
  }
  return undefined;
}

/** The segment objects of `ref` (of one dataspace, when given), a listing page at a time. */
async function* candidatesIn(runtime: VerifyRuntime, ref: BucketRef, dataspace: string | undefined): AsyncGenerator<Candidate[]> {
  const prefix = runtime.config.keyPrefix;
  for await (const page of runtime.store.list(ref, prefix)) {
    const candidates: Candidate[] = [];
    for (const o of page) {
      const identity = parseSegmentKey(prefix, o.key);
      if (identity !== undefined && (dataspace === undefined || identity.dataspace === dataspace)) candidates.push({ ref, key: o.key, identity, listedSize: o.size });
    }
    yield candidates;
  }
}

function missingFinding(runtime: VerifyRuntime, identity: SegmentIdentity, buckets: readonly BucketRef[]): Finding {
  return { kind: 'missing', identity, where: formatSegmentKey(runtime.config.keyPrefix, identity), reason: `in none of ${buckets.map((b) => `s3://${b.bucket}`).join(', ')}` };
}

/** Checks one object; undefined when it is intact. */
async function checkOne(runtime: VerifyRuntime, c: Candidate, metadataOnly: boolean, onBytes: (n: number) => void): Promise<Finding | undefined> {
  const where = `s3://${c.ref.bucket}/${c.key}`;
  const finding = (kind: FindingKind, reason: string): Finding => ({ kind, identity: c.identity, where, reason });
  try {
    const info = await runtime.store.head(c.ref, c.key);
    if (info === undefined) return finding('missing', 'listed, then gone (deleted while verifying?)');
    const metadata = decodeObjectMetadata(info.metadata);
    if (metadata === undefined) return finding('unreadable', 'no bucket-storage metadata (bks-format, bks-size): not written by the upload function');
    // The listing's size when there is one: that is what a GET would return.
    const found: LocatedSegment = { ref: c.ref, key: c.key, info: { ...info, size: c.listedSize ?? info.size }, metadata };
    checkStoredSize(found);
    if (metadata.format === 'v1' && metadata.header !== undefined) runtime.keyRing.find(parseHeader(metadata.header).keyId);
    if (metadataOnly) return undefined;
    const meter = new VerifyingMeter({ size: metadata.plaintextSize, sha256: metadata.format === 'plain' ? metadata.sha256 : undefined, what: where });
    const counted = new Writable({
      write(chunk: Buffer, _enc, done) {
        onBytes(chunk.length);
        done();
      },
    });
    // A restore to nowhere: the plaintext is authenticated (or its digest checked) and dropped.
    await pipeline(readWhole(runtime, found, c.identity, { concurrency: 1 }), meter, counted);
    return undefined;
  } catch (err) {
    return finding(kindOf(err), err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  }
}

function kindOf(err: unknown): FindingKind {
  if (err instanceof UnknownKeyIdError || err instanceof StorageError) return 'unreadable';
  if (err instanceof TruncatedError || err instanceof IntegrityError || err instanceof AuthenticationError || err instanceof MalformedHeaderError) return 'corrupt';
  return 'unreadable';
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      const item = items[i];
      if (item !== undefined) await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
