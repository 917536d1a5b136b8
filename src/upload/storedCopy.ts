/**
 * "Already stored?": the copy of a segment in any registered bucket (current first). A copy is acknowledged
 * without a second upload (files already stored are never written again) only when it holds this segment's
 * content, intact; anything else is refused with the reason and never overwritten:
 *   size      the stored plaintext size must be the source's, and the object's size must agree with its metadata;
 *   content   the segment's SHA-256 (announced, or else read from the source) is compared with
 *               - format v1 with bks-mac: the MAC recomputed under the object's key (digestMac.ts), no GET;
 *               - format v1 without bks-mac (older objects, or written without an announced sha256): the object
 *                 is read, decrypted (its chunk tags verified) and hashed;
 *               - plain: bks-sha256, then the object is read and hashed (it is accepted only when intact);
 *   plain objects while encryption is on follow plainObjects.ts.
 */
import { pipeline } from 'node:stream/promises';
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import type { Config } from '../core/config.ts';
import { digestMac, macsEqual } from '../core/digestMac.ts';
import { IntegrityError } from '../core/errors.ts';
import type { KeyRing } from '../core/keyRing.ts';
import { decodeObjectMetadata, expectedStoredSize, type SegmentObjectMetadata } from '../core/objectMetadata.ts';
import type { SegmentIdentity } from '../core/objectKeys.ts';
import { checkPlainObject } from '../core/plainObjects.ts';
import type { BucketRef, ObjectInfo, S3Store } from '../core/s3Store.ts';
import { createDecryptStream, parseHeader } from '../core/format/index.ts';
import { VerifyingMeter } from '../core/verifyingMeter.ts';

export interface StoredCopy {
  readonly ref: BucketRef;
  readonly key: string;
  readonly info: ObjectInfo;
  readonly meta: SegmentObjectMetadata;
}

export interface LookupRuntime {
  readonly registry: BucketRegistry;
  readonly store: Pick<S3Store, 'head'>;
}

/** The stored copy of `key` in any registered bucket (current first), if one of ours exists. */
export async function findStoredCopy(runtime: LookupRuntime, key: string): Promise<StoredCopy | undefined> {
  for (const ref of await runtime.registry.searchOrder()) {
    const copy = await storedCopyIn(runtime.store, ref, key);
    if (copy !== undefined) return copy;
  }
  return undefined;
}

/** The copy of `key` in bucket `ref`, if one of ours exists there. */
export async function storedCopyIn(store: Pick<S3Store, 'head'>, ref: BucketRef, key: string): Promise<StoredCopy | undefined> {
  const info = await store.head(ref, key);
  const meta = info && decodeObjectMetadata(info.metadata, `s3://${ref.bucket}/${key}`);
  return info && meta ? { ref, key, info, meta } : undefined;
}

/** Throws IntegrityError unless `stored` is an intact copy of a segment of `size` bytes. */
export function checkStoredCopy(stored: StoredCopy, size: number, what: string): void {
  const where = `s3://${stored.ref.bucket}/${stored.key}`;
  if (stored.meta.plaintextSize !== size) {
    throw new IntegrityError('size', String(stored.meta.plaintextSize), String(size), `${what}: ${where} already holds this segment with another size; it is never overwritten`);
  }
  const expected = expectedStoredSize(stored.meta, where);
  if (stored.info.size !== expected) {
    throw new IntegrityError('size', String(expected), String(stored.info.size), `${what}: ${where} is damaged (its size disagrees with its metadata); it is never overwritten: check it with verify, then remove it by hand`);
  }
}

export interface ContentRuntime {
  readonly config: Pick<Config, 'encryption' | 'plainObjectsBefore'>;
  readonly keyRing: KeyRing;
  readonly store: Pick<S3Store, 'get'>;
}

/**
 * Throws unless `stored` holds the content whose SHA-256 is `sha256` (see the module comment): IntegrityError
 * naming the reason, UnknownKeyIdError for a key the ring does not hold, PlainObjectRefusedError, or the codec's
 * errors for a damaged object. The stored object is never touched.
 */
export async function checkStoredContent(runtime: ContentRuntime, stored: StoredCopy, identity: SegmentIdentity, sha256: string, what: string): Promise<void> {
  const where = `s3://${stored.ref.bucket}/${stored.key}`;
  const other = `${what}: ${where} already holds this segment with other content (the announced sha256, or the source, differs from what is stored); it is never overwritten`;
  checkPlainObject(runtime.config, { ref: stored.ref, key: stored.key, info: stored.info, metadata: stored.meta }, 'already stored');
  if (stored.meta.format === 'plain') {
    if (stored.meta.sha256 !== sha256) throw new IntegrityError('sha256', sha256, stored.meta.sha256 ?? 'none', other);
    // Accepted only when intact: its bytes must still have the digest it carries.
    await storedDigest(runtime, stored, identity, `${what}: ${where} is damaged (its bytes do not match its bks-sha256); it is never overwritten: remove it by hand, then announce the segment again`);
    return;
  }
  if (stored.meta.mac !== undefined && stored.meta.header !== undefined) {
    const header = parseHeader(stored.meta.header);
    const expected = digestMac(runtime.keyRing.find(header.keyId), header.salt, identity, sha256);
    if (!macsEqual(expected, stored.meta.mac)) throw new IntegrityError('sha256', sha256, 'another digest (bks-mac differs)', other);
    return;
  }
  const actual = await storedDigest(runtime, stored, identity, `${what}: ${where}`);
  if (actual !== sha256) throw new IntegrityError('sha256', sha256, actual, other);
}

/** The SHA-256 of the stored object's plaintext, read with one GET (decrypted and authenticated for v1). */
async function storedDigest(runtime: ContentRuntime, stored: StoredCopy, identity: SegmentIdentity, what: string): Promise<string> {
  const { meta } = stored;
  const body = await runtime.store.get(stored.ref, stored.key, { ifMatch: stored.info.etag });
  const meter = new VerifyingMeter({ size: meta.plaintextSize, sha256: meta.format === 'plain' ? meta.sha256 : undefined, what });
  const drain = async (source: AsyncIterable<unknown>) => {
    for await (const _chunk of source);
  };
  if (meta.format === 'plain') await pipeline(body, meter, drain);
  else await pipeline(body, createDecryptStream({ keyRing: runtime.keyRing, identity, plaintextSize: meta.plaintextSize }), meter, drain);
  return meter.sha256;
}
