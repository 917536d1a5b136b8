/**
 * One streaming upload into one S3 object, in bounded memory: the lib-storage pattern (the body cut into parts
 * of `partSize`, at most `queueSize` in flight, one PutObject when it fits in one part, the multipart upload
 * aborted on any failure), written for CPU per byte, which is what a Lambda function pays for:
 *
 * - the part buffers are allocated once and reused (queueSize of them, at least 2: the next part is filled in the
 *   buffer of the first part in flight to settle), and by the next upload of the process once this one
 *   succeeded (partBufferPool.ts: a warm container's uploads share them), and the body is pulled into them
 *   (a ByteSource: a file is read, and an object sealed, straight into the part; a Readable's chunks are copied
 *   in once); lib-storage concatenated every part into a fresh buffer (a copy of every byte, fresh pages the
 *   kernel must fault in, and garbage to collect);
 * - the part's CRC32 is computed once it is filled (zlib's, native) and sent as ChecksumCRC32, so the SDK
 *   computes none itself;
 * - the payload is sent as UNSIGNED-PAYLOAD: the SigV4 signature covers the request's headers (the CRC32
 *   among them, which S3 checks against the body) but no SHA-256 of the body, which was a full extra SHA-256
 *   pass over every byte uploaded (the largest single cost in the profile of an upload). The body is
 *   protected in transit by TLS and against corruption by the CRC32, as aws-cli does over HTTPS.
 *
 * - write once: with IfNoneMatch '*', PutObject and CompleteMultipartUpload carry If-None-Match (S3 answers 412
 *   when the key exists; the upload is then aborted and the 412 reaches the caller), as lib-storage passed its
 *   params on to both;
 * - it answers only once its requests settled and, on failure or abort, the multipart upload was aborted (a
 *   Lambda function is frozen as soon as it answers; lib-storage aborted in the background).
 *
 * Why not lib-storage: the peers bench compares both writers in one run (client `ours-lib-storage`, README
 * "Performance").
 *
 * Memory: max(queueSize, 2) × partSize, whatever the object's size.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { givePartBuffers, takePartBuffer } from './partBufferPool.ts';
import { readableBytes, type ByteSource } from './byteSource.ts';

/** What every request of the upload carries besides the body. */
export interface ObjectParams {
  readonly Bucket: string;
  readonly Key: string;
  readonly Metadata?: Record<string, string> | undefined;
  readonly ServerSideEncryption?: ServerSideEncryption | undefined;
  readonly SSEKMSKeyId?: string | undefined;
  readonly BucketKeyEnabled?: boolean | undefined;
  /** '*': write once. Sent with PutObject and CompleteMultipartUpload (S3 answers 412 when the key exists);
   *  CreateMultipartUpload and UploadPart take no condition. */
  readonly IfNoneMatch?: '*' | undefined;
}

export interface UploadOptions {
  readonly partSize: number;
  readonly queueSize: number;
  /** Stops the upload: parts in flight are cancelled and the multipart upload aborted. */
  readonly signal?: AbortSignal | undefined;
  /** Bytes S3 has acknowledged so far, after each part. */
  readonly onProgress?: ((loaded: number) => void) | undefined;
}

export interface UploadResult {
  readonly ETag: string | undefined;
  readonly ChecksumCRC32: string | undefined;
}

/** The error of an upload stopped by its signal (lib-storage's name for it). */
export class UploadAbortedError extends Error {
  constructor(options?: ErrorOptions) {
    super('Upload aborted.', options);
    this.name = 'AbortError';
  }
}

/** S3's base64 form of a CRC32 value (4 bytes, big-endian). */
export function crc32Base64(value: number): string {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0);
  return b.toString('base64');
}

const UNSIGNED_PAYLOAD = { step: 'build', name: 'bucketStorageUnsignedPayload' } as const;

/** A build step that marks the request's payload as unsigned, before the signer would hash the body. */
function unsignedPayloadStep<A extends { readonly request: unknown }, R>(next: (args: A) => Promise<R>): (args: A) => Promise<R> {
  return (args) => {
    const { request } = args;
    if (typeof request === 'object' && request !== null && 'headers' in request && typeof request.headers === 'object' && request.headers !== null) {
      Object.assign(request.headers, { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' });
    }
    return next(args);
  };
}

/** The body's SHA-256 is not part of the signature: the CRC32 header is (see the module's comment). */
function unsignedPayload<C extends PutObjectCommand | UploadPartCommand>(command: C): C {
  if (command instanceof PutObjectCommand) command.middlewareStack.add(unsignedPayloadStep, UNSIGNED_PAYLOAD);
  else command.middlewareStack.add(unsignedPayloadStep, UNSIGNED_PAYLOAD);
  return command;
}

/** A filled part: its buffer (from the pool) and the bytes it holds. */
interface Part {
  readonly buffer: Buffer;
  readonly length: number;
}

/** Uploads `body` (a ByteSource, or a Readable whose chunks are copied into the parts) as the object `params` names. */
export async function uploadStream(client: S3Client, params: ObjectParams, body: ByteSource | Readable, options: UploadOptions): Promise<UploadResult> {
  const source = body instanceof Readable ? readableBytes(body) : body;
  try {
    return await new StreamUpload(client, params, options).run(source);
  } finally {
    if (body instanceof Readable && !body.destroyed) body.destroy();
  }
}

class StreamUpload {
  readonly #client: S3Client;
  readonly #params: ObjectParams;
  readonly #options: UploadOptions;
  /** Cancels the requests in flight when the upload fails or is stopped. */
  readonly #controller = new AbortController();
  readonly #free: Buffer[] = [];
  /** Part buffers taken so far (at most max(queueSize, 2)), given back to the pool once the upload succeeded. */
  readonly #owned: Buffer[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #parts: CompletedPart[] = [];
  #uploadId: Promise<string> | undefined;
  #nextPart = 1;
  #acknowledged = 0;
  #failure: { readonly error: unknown } | undefined;

  constructor(client: S3Client, params: ObjectParams, options: UploadOptions) {
    this.#client = client;
    this.#params = params;
    this.#options = options;
  }

  async run(source: ByteSource): Promise<UploadResult> {
    const { signal } = this.#options;
    const onAbort = () => this.#fail(new UploadAbortedError({ cause: signal?.reason }));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const result = await this.#transfer(source);
      // Every request has been answered: nothing reads the buffers any more, the next upload may.
      givePartBuffers(this.#owned);
      return result;
    } catch (err) {
      this.#fail(err);
      await this.#settle();
      await this.#abort();
      throw this.#failure?.error ?? err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async #transfer(source: ByteSource): Promise<UploadResult> {
    const first = await this.#fill(source);
    if (first.length < this.#options.partSize) return await this.#putWhole(first);
    let next = await this.#fill(source);
    if (next.length === 0) return await this.#putWhole(first);
    await this.#send(first);
    while (next.length === this.#options.partSize) {
      await this.#send(next);
      next = await this.#fill(source);
    }
    if (next.length > 0) await this.#send(next);
    await this.#settle();
    this.#throwIfFailed();
    return await this.#complete();
  }

  /** The next part: a pool buffer filled from the source (shorter than partSize only at the end). */
  async #fill(source: ByteSource): Promise<Part> {
    this.#throwIfFailed();
    const buffer = await this.#acquire();
    this.#throwIfFailed();
    const length = await source.read(buffer);
    this.#throwIfFailed();
    if (length === 0) this.#free.push(buffer);
    return { buffer, length };
  }

  /**
   * A part buffer: a free one, a new one while fewer than queueSize exist or none is in flight (the second part
   * is read before the first is sent, so a queueSize of 1 has two), or else the buffer of the first part in
   * flight to settle. A part is in flight far longer than it takes to fill, so queueSize buffers keep about
   * queueSize parts in flight; queueSize + 1 (one filling while queueSize are sent) cost a part more of memory
   * for little more throughput (docs/DEVELOPMENT.md, "Upload memory").
   */
  async #acquire(): Promise<Buffer> {
    while (this.#free.length === 0 && this.#owned.length >= this.#options.queueSize && this.#inFlight.size > 0) await Promise.race(this.#inFlight);
    const free = this.#free.pop();
    if (free !== undefined) return free;
    const taken = takePartBuffer(this.#options.partSize);
    this.#owned.push(taken);
    return taken;
  }

  /** Starts the upload of `part` once fewer than queueSize parts are in flight (creating the upload first). */
  async #send(part: Part): Promise<void> {
    this.#uploadId ??= this.#create();
    const uploadId = await this.#uploadId;
    while (this.#inFlight.size >= this.#options.queueSize) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
    const partNumber = this.#nextPart++;
    const checksum = crc32Base64(crc32(part.buffer.subarray(0, part.length)));
    const command = unsignedPayload(
      new UploadPartCommand({
        Bucket: this.#params.Bucket,
        Key: this.#params.Key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: part.buffer.subarray(0, part.length),
        ContentLength: part.length,
        ChecksumAlgorithm: 'CRC32',
        ChecksumCRC32: checksum,
      }),
    );
    const sent: Promise<void> = this.#client
      .send(command, { abortSignal: this.#controller.signal })
      .then((out) => {
        if (out.ETag === undefined) throw new Error(`UploadPart ${partNumber} of s3://${this.#params.Bucket}/${this.#params.Key} answered without an ETag`);
        // The part's checksum as S3 echoed it (servers that keep no checksums echo none, and some parse a part
        // with more than PartNumber and ETag wrongly).
        this.#parts.push({ PartNumber: partNumber, ETag: out.ETag, ...(out.ChecksumCRC32 !== undefined ? { ChecksumCRC32: out.ChecksumCRC32 } : {}) });
        this.#acknowledged += part.length;
        this.#options.onProgress?.(this.#acknowledged);
      })
      .catch((err: unknown) => this.#fail(err))
      .finally(() => {
        // The request settled: nothing reads the buffer any more.
        this.#free.push(part.buffer);
        this.#inFlight.delete(sent);
      });
    this.#inFlight.add(sent);
  }

  #create(): Promise<string> {
    const { IfNoneMatch: _condition, ...params } = this.#params;
    const created = this.#client
      .send(new CreateMultipartUploadCommand({ ...params, ChecksumAlgorithm: 'CRC32' }), { abortSignal: this.#controller.signal })
      .then((out) => {
        if (out.UploadId === undefined) throw new Error(`CreateMultipartUpload of s3://${this.#params.Bucket}/${this.#params.Key} answered without an UploadId`);
        return out.UploadId;
      });
    created.catch(() => undefined); // awaited by #send; #abort checks it again
    return created;
  }

  /** The whole body fitted in one part: one PutObject. */
  async #putWhole(part: Part): Promise<UploadResult> {
    const command = unsignedPayload(
      new PutObjectCommand({
        ...this.#params,
        Body: part.buffer.subarray(0, part.length),
        ContentLength: part.length,
        ChecksumAlgorithm: 'CRC32',
        ChecksumCRC32: crc32Base64(crc32(part.buffer.subarray(0, part.length))),
      }),
    );
    const out = await this.#client.send(command, { abortSignal: this.#controller.signal });
    this.#options.onProgress?.(part.length);
    return { ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 };
  }

  async #complete(): Promise<UploadResult> {
    const uploadId = await this.#uploadId;
    const parts = [...this.#parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    if (parts.length !== this.#nextPart - 1) throw new Error(`${this.#nextPart - 1} parts sent but ${parts.length} acknowledged`);
    const out = await this.#client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.#params.Bucket,
        Key: this.#params.Key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
        ...(this.#params.IfNoneMatch !== undefined ? { IfNoneMatch: this.#params.IfNoneMatch } : {}),
      }),
      { abortSignal: this.#controller.signal },
    );
    return { ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 };
  }

  /** Records the first failure and cancels the requests in flight. */
  #fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = { error };
    this.#controller.abort(error);
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  /** Waits until no part is in flight. */
  async #settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Aborts the multipart upload, if one was created, so no part is left behind (best effort). */
  async #abort(): Promise<void> {
    const uploadId = await this.#uploadId?.catch(() => undefined);
    if (uploadId === undefined) return;
    await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#params.Bucket, Key: this.#params.Key, UploadId: uploadId })).catch(() => undefined);
  }
}
