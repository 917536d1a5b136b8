/**
 * The upload writer as it was before the own one (src/core/multipartUpload.ts): @aws-sdk/lib-storage's Upload,
 * its defaults (the SDK computes each part's CRC32 itself and signs the payload's SHA-256), fed the same
 * ByteSource through a Readable of 1 MiB chunks (fresh buffers: lib-storage keeps the chunks until it has
 * concatenated them into a part). The peers bench builds a second upload bundle with this module in place of
 * multipartUpload.ts (client `ours-lib-storage`), so the two writers are compared in one run, on one server,
 * with everything else (source reads, sealing, handler) the same. Not part of any deployed bundle.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { ByteSource } from '../../src/core/byteSource.ts';
import type { ObjectParams, UploadOptions, UploadResult } from '../../src/core/multipartUpload.ts';

const READ_SIZE = 1 << 20;

async function* chunks(source: ByteSource): AsyncGenerator<Buffer> {
  for (;;) {
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    const n = await source.read(buffer);
    if (n > 0) yield buffer.subarray(0, n);
    if (n < READ_SIZE) return;
  }
}

export async function uploadStream(client: S3Client, params: ObjectParams, body: ByteSource | Readable, options: UploadOptions): Promise<UploadResult> {
  const stream = body instanceof Readable ? body : Readable.from(chunks(body), { objectMode: false });
  const controller = new AbortController();
  options.signal?.addEventListener('abort', () => controller.abort(options.signal?.reason), { once: true });
  const upload = new Upload({
    client,
    partSize: options.partSize,
    queueSize: options.queueSize,
    leavePartsOnError: false,
    abortController: controller,
    params: { ...params, Body: stream, ChecksumAlgorithm: 'CRC32' },
  });
  if (options.onProgress) upload.on('httpUploadProgress', (p) => options.onProgress?.(p.loaded ?? 0));
  try {
    const out = await upload.done();
    return { ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 };
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
}
