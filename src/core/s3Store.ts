/**
 * The one S3 access layer. Every S3 call of the functions and the CLI goes through here, so error mapping
 * (StorageError with `retryable`), SSE-KMS settings and checksum handling live in one place.
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3ServiceException,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { ByteSource } from './byteSource.ts';
import { BucketStorageError, StorageError } from './errors.ts';
import { uploadStream } from './multipartUpload.ts';

export interface BucketRef {
  readonly bucket: string;
  readonly region: string;
}

export interface ObjectInfo {
  readonly size: number;
  readonly etag: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly checksumCrc32: string | undefined;
  readonly checksumType: string | undefined;
  readonly serverSideEncryption: string | undefined;
  /** When S3 stored this version of the object (every write sets it; a writer cannot choose it). */
  readonly lastModified: Date | undefined;
}

export interface ListedObject {
  readonly key: string;
  readonly size: number;
  readonly etag: string | undefined;
  readonly lastModified: Date | undefined;
}

/** What the sweep of a key's incomplete multipart uploads did. */
export interface SweepResult {
  /** Uploads aborted: initiated before the cut-off, so their writer is dead. */
  readonly aborted: number;
  /** Uploads left alone: initiated after the cut-off, possibly a live twin's. */
  readonly live: number;
}

export interface GetOptions {
  /** Inclusive byte range. */
  readonly range?: { readonly start: number; readonly end: number } | undefined;
  readonly signal?: AbortSignal | undefined;
  /** An ETag from a HEAD: S3 refuses with 412 if the object was replaced since, so the parts of one restore
   *  all come from the same object. */
  readonly ifMatch?: string | undefined;
}

export interface PutOptions {
  readonly metadata?: Record<string, string>;
  /** SSE-KMS under this key ARN (bucket key enabled) when set. */
  readonly kmsKeyArn?: string | undefined;
  /** The additional checksum of every part: always CRC32, computed as the body is read (multipartUpload.ts). */
  readonly checksumAlgorithm?: 'CRC32';
  readonly partSize: number;
  readonly queueSize: number;
  /** '*': S3 refuses (412) to create the object when the key exists (PutObject and CompleteMultipartUpload). */
  readonly ifNoneMatch?: '*';
  /** Lets a caller stop an upload in flight; its multipart upload is then aborted. */
  readonly abortSignal?: AbortSignal;
  readonly onProgress?: (loaded: number) => void;
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Wraps any SDK or network failure in a StorageError naming the operation, bucket and key. */
export function storageError(operation: string, ref: BucketRef, key: string | undefined, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
  const name = err instanceof Error ? err.name : 'Error';
  const retryable = status === undefined ? !(err instanceof S3ServiceException) : RETRYABLE_STATUS.has(status);
  const hint =
    status === 403
      ? 'access denied: check the credentials and the bucket policy'
      : name === 'NoSuchBucket' || (operation === 'HeadBucket' && status === 404)
        ? 'the bucket does not exist: check S3_STORAGE_BUCKET/S3_STORAGE_REGION or the registry'
        : err instanceof Error ? err.message : String(err);
  const where = key === undefined ? `s3://${ref.bucket}` : `s3://${ref.bucket}/${key}`;
  return new StorageError(operation, ref.bucket, key, `${operation} ${where} (${ref.region}) failed: ${name}${status ? ` ${status}` : ''}: ${hint}`, {
    cause: err,
    retryable,
    httpStatus: status,
  });
}

/** A conditional write that lost: 412 Precondition Failed, or 409 ConditionalRequestConflict (a concurrent
 *  conditional write of the same key was in progress). */
export function isConditionFailure(err: unknown): boolean {
  return err instanceof StorageError && (err.httpStatus === 412 || err.httpStatus === 409);
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey');
}

export class S3Store {
  constructor(private readonly clientFor: (region: string) => S3Client) {}

  /** HEAD with checksum mode; undefined when the object does not exist. */
  async head(ref: BucketRef, key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.clientFor(ref.region).send(new HeadObjectCommand({ Bucket: ref.bucket, Key: key, ChecksumMode: 'ENABLED' }));
      return {
        size: out.ContentLength ?? 0,
        etag: out.ETag,
        metadata: out.Metadata ?? {},
        checksumCrc32: out.ChecksumCRC32,
        checksumType: out.ChecksumType,
        serverSideEncryption: out.ServerSideEncryption,
        lastModified: out.LastModified,
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storageError('HeadObject', ref, key, err);
    }
  }

  /** Resolves when the bucket exists and the credentials may use it (s3:ListBucket); a StorageError otherwise. */
  async headBucket(ref: BucketRef): Promise<void> {
    try {
      await this.clientFor(ref.region).send(new HeadBucketCommand({ Bucket: ref.bucket }));
    } catch (err) {
      throw storageError('HeadBucket', ref, undefined, err);
    }
  }

  /** The object's bytes as a stream (see GetOptions). */
  async get(ref: BucketRef, key: string, options: GetOptions = {}): Promise<Readable> {
    const { range, signal, ifMatch } = options;
    try {
      const out = await this.clientFor(ref.region).send(
        new GetObjectCommand({
          Bucket: ref.bucket,
          Key: key,
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          ...(ifMatch !== undefined ? { IfMatch: ifMatch } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      );
      // In node the SDK's streaming body is an http.IncomingMessage: a Readable (the type is a union for browsers).
      return out.Body as Readable;
    } catch (err) {
      throw storageError('GetObject', ref, key, err);
    }
  }

  /** Uploads `body` (pulled into the part buffers, or a stream) to S3: one PUT when small, multipart otherwise,
   *  aborted on failure (multipartUpload.ts). */
  async put(ref: BucketRef, key: string, body: ByteSource | Readable, options: PutOptions): Promise<{ etag: string | undefined; checksumCrc32: string | undefined }> {
    const params = {
      Bucket: ref.bucket,
      Key: key,
      Metadata: options.metadata,
      // Write once: PutObject and CompleteMultipartUpload both carry If-None-Match (multipartUpload.ts).
      ...(options.ifNoneMatch ? { IfNoneMatch: options.ifNoneMatch } : {}),
      ...(options.kmsKeyArn ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: options.kmsKeyArn, BucketKeyEnabled: true } as const : {}),
    };
    try {
      const out = await uploadStream(this.clientFor(ref.region), params, body, {
        partSize: options.partSize,
        queueSize: options.queueSize,
        signal: options.abortSignal,
        onProgress: options.onProgress,
      });
      return { etag: out.ETag, checksumCrc32: out.ChecksumCRC32 };
    } catch (err) {
      // uploadStream answers only once its parts settled and its multipart upload was aborted (a deadline too:
      // a Lambda is frozen as soon as it answers, so nothing may be left to the background).
      // The body's own failure (size/sha256 check, decrypt, source error) is the one to report.
      if (err instanceof BucketStorageError) throw err;
      throw storageError('Upload', ref, key, err);
    }
  }

  /**
   * Aborts the incomplete multipart uploads of exactly `key` initiated before `initiatedBefore` (left by a
   * process killed mid-upload: no writer runs longer than its function's timeout) and leaves younger ones
   * alone, so a live twin writing the same key is never aborted. Servers without ListMultipartUploads (fauxqs)
   * return undefined: the bucket's lifecycle rule then is what removes such parts.
   */
  async abortIncompleteUploads(ref: BucketRef, key: string, initiatedBefore: Date): Promise<SweepResult | undefined> {
    let listed;
    try {
      listed = await this.clientFor(ref.region).send(new ListMultipartUploadsCommand({ Bucket: ref.bucket, Prefix: key }));
    } catch (err) {
      if (err instanceof S3ServiceException && [400, 404, 405, 501].includes(err.$metadata.httpStatusCode ?? 0) && err.name !== 'NoSuchBucket') return undefined;
      throw storageError('ListMultipartUploads', ref, key, err);
    }
    let aborted = 0;
    let live = 0;
    for (const u of listed.Uploads ?? []) {
      if (u.Key !== key || u.UploadId === undefined) continue;
      if (u.Initiated === undefined || u.Initiated.getTime() >= initiatedBefore.getTime()) {
        live++;
        continue;
      }
      try {
        await this.clientFor(ref.region).send(new AbortMultipartUploadCommand({ Bucket: ref.bucket, Key: key, UploadId: u.UploadId }));
        aborted++;
      } catch (err) {
        // Already gone (completed or aborted by another sweep since the listing): nothing left to do.
        if (err instanceof S3ServiceException && err.name === 'NoSuchUpload') continue;
        throw storageError('AbortMultipartUpload', ref, key, err);
      }
    }
    return { aborted, live };
  }

  /** A small object's body and ETag (e.g. the registry); undefined when it does not exist. */
  async getSmall(ref: BucketRef, key: string): Promise<{ body: string; etag: string | undefined } | undefined> {
    try {
      const out = await this.clientFor(ref.region).send(new GetObjectCommand({ Bucket: ref.bucket, Key: key }));
      return { body: (await out.Body?.transformToString('utf8')) ?? '', etag: out.ETag };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storageError('GetObject', ref, key, err);
    }
  }

  /** A small object in one PUT, optionally conditional (If-None-Match: * or If-Match: etag). */
  async putSmall(ref: BucketRef, key: string, body: string | Buffer, condition?: { ifNoneMatch: '*' } | { ifMatch: string }): Promise<string | undefined> {
    try {
      const out = await this.clientFor(ref.region).send(
        new PutObjectCommand({
          Bucket: ref.bucket,
          Key: key,
          Body: body,
          ...(condition && 'ifNoneMatch' in condition ? { IfNoneMatch: condition.ifNoneMatch } : {}),
          ...(condition && 'ifMatch' in condition ? { IfMatch: condition.ifMatch } : {}),
        }),
      );
      return out.ETag;
    } catch (err) {
      throw storageError('PutObject', ref, key, err);
    }
  }

  /** The objects under `prefix` (after the key `startAfter`, when given), a page (≤ 1,000) at a time. */
  async *list(ref: BucketRef, prefix: string, startAfter?: string): AsyncGenerator<readonly ListedObject[]> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.clientFor(ref.region).send(
          new ListObjectsV2Command({ Bucket: ref.bucket, Prefix: prefix || undefined, ContinuationToken: token, ...(token === undefined && startAfter ? { StartAfter: startAfter } : {}) }),
        );
      } catch (err) {
        throw storageError('ListObjectsV2', ref, prefix || undefined, err);
      }
      yield (out.Contents ?? []).flatMap((c) => (c.Key === undefined ? [] : [{ key: c.Key, size: c.Size ?? 0, etag: c.ETag, lastModified: c.LastModified }]));
      token = out.NextContinuationToken;
    } while (token);
  }

  /** Deletes one object (a staged copy once its segment is stored); deleting a missing key succeeds. */
  async deleteObject(ref: BucketRef, key: string): Promise<void> {
    try {
      await this.clientFor(ref.region).send(new DeleteObjectCommand({ Bucket: ref.bucket, Key: key }));
    } catch (err) {
      throw storageError('DeleteObject', ref, key, err);
    }
  }

  /**
   * The distinct key prefixes that end with `delimiter` (S3's CommonPrefixes: any string may be a delimiter),
   * e.g. every `<prefix>_bucket-storage/` of a state bucket in one listing, however many marks each holds.
   */
  async commonPrefixes(ref: BucketRef, delimiter: string): Promise<string[]> {
    const found: string[] = [];
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.clientFor(ref.region).send(new ListObjectsV2Command({ Bucket: ref.bucket, Delimiter: delimiter, ContinuationToken: token }));
      } catch (err) {
        throw storageError('ListObjectsV2', ref, undefined, err);
      }
      for (const p of out.CommonPrefixes ?? []) if (p.Prefix !== undefined) found.push(p.Prefix);
      token = out.NextContinuationToken;
    } while (token);
    return found;
  }

  /** Deletes up to 1,000 keys in one request; returns the keys S3 reported as failed, with reasons. */
  async deleteBatch(ref: BucketRef, keys: readonly string[]): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    if (keys.length === 0) return failed;
    if (keys.length > 1000) throw new RangeError('deleteBatch takes at most 1,000 keys');
    try {
      const out = await this.clientFor(ref.region).send(
        new DeleteObjectsCommand({ Bucket: ref.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
      );
      for (const e of out.Errors ?? []) if (e.Key !== undefined) failed.set(e.Key, `${e.Code ?? 'Error'}: ${e.Message ?? ''}`);
      return failed;
    } catch (err) {
      throw storageError('DeleteObjects', ref, undefined, err);
    }
  }
}
