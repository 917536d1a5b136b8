/**
 * Test fixture: stores a segment object exactly as an upload does (src/core/objectMetadata.ts): format v1
 * ciphertext with bks-format v1, bks-size and bks-header, or the plain bytes with bks-format plain, bks-size
 * and bks-sha256. It bypasses uploadSegment() so fetch tests can place objects of any shape (chunk size, prefix,
 * key) directly.
 */
import type { Readable } from 'node:stream';
import type { KeyEntry } from '../../src/core/keyRing.ts';
import { encodeObjectMetadata } from '../../src/core/objectMetadata.ts';
import { formatSegmentKey, type SegmentIdentity } from '../../src/core/objectKeys.ts';
import type { BucketRef, S3Store } from '../../src/core/s3Store.ts';
import { createEncryptStream } from '../../src/core/format/index.ts';
import { sealDigest } from '../../src/core/sealedDigest.ts';
import { patternSha256, patternStream } from './sourceData.ts';

export interface StoreOptions {
  /** The key to encrypt with; undefined stores the plain bytes (encryption `off`). */
  readonly key: KeyEntry | undefined;
  readonly prefix?: string;
  readonly chunkLog2?: number;
  readonly partSize?: number;
  /** Also store bks-digest (the SHA-256 sealed, as an upload with an announced sha256 does; v1 only). */
  readonly sealDigest?: boolean;
}

export interface StoredSegment {
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** Stores patternStream(size, seed) as segment `identity` in `ref`. */
export async function storeSegment(store: S3Store, ref: BucketRef, identity: SegmentIdentity, size: number, seed: string, options: StoreOptions): Promise<StoredSegment> {
  const key = formatSegmentKey(options.prefix ?? '', identity);
  const sha256 = await patternSha256(size, seed);
  let body: Readable = patternStream(size, seed);
  let metadata: Record<string, string>;
  if (options.key === undefined) {
    metadata = encodeObjectMetadata({ format: 'plain', plaintextSize: size, sha256 });
  } else {
    const encrypt = createEncryptStream({ key: options.key, identity, chunkLog2: options.chunkLog2 ?? 20 });
    const digest = options.sealDigest === true ? sealDigest(options.key.master, encrypt.header, identity, sha256) : undefined;
    metadata = encodeObjectMetadata({ format: 'v1', plaintextSize: size, header: encrypt.header.raw, ...(digest === undefined ? {} : { digest }) });
    body = body.pipe(encrypt);
  }
  await store.put(ref, key, body, { metadata, partSize: options.partSize ?? 8 * 1024 * 1024, queueSize: 4 });
  return { key, size, sha256 };
}
