/**
 * The streaming upload (src/core/multipartUpload.ts) against an in-process fake S3 client: what it sends (parts,
 * their checksums in CompleteMultipartUpload), how many parts are in flight, progress, and how it stops: a
 * failing UploadPart, an answer without ETag or UploadId, and the caller's signal at each step (the request in
 * flight cancelled, the multipart upload aborted, the listener removed). Written for the survivors of the
 * mutation run `upload` (notes: mut-uploadcore.md).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { getEventListeners } from 'node:events';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ByteSource } from '../src/core/byteSource.ts';
import { uploadStream, type ObjectParams } from '../src/core/multipartUpload.ts';
import { givePartBuffers, idlePartBuffers, takePartBuffer } from '../src/core/partBufferPool.ts';
import { crc32Base64 } from './support/crc32.ts';

type Input = Record<string, unknown>;
type Handler = (input: Input, signal: AbortSignal | undefined) => Promise<object>;
type CommandName = 'CreateMultipartUpload' | 'UploadPart' | 'CompleteMultipartUpload' | 'AbortMultipartUpload' | 'PutObject';

interface Sent {
  readonly command: string;
  readonly input: Input;
  /** UploadPart and PutObject: a copy of the body as it was when sent (the upload reuses its part buffers). */
  readonly body?: Buffer | undefined;
}

const PARAMS: ObjectParams = { Bucket: 'b', Key: 'k' };

function bodyOf(input: Input): Buffer | undefined {
  const body = input.Body;
  return body instanceof Uint8Array ? Buffer.from(body) : undefined;
}

/** The fake's default answers: S3's, with the part checksum echoed as S3 does. */
const defaults: Record<CommandName, Handler> = {
  CreateMultipartUpload: async () => ({ UploadId: 'up-1' }),
  UploadPart: async (input) => ({ ETag: `"e${String(input.PartNumber)}"`, ChecksumCRC32: input.ChecksumCRC32 }),
  CompleteMultipartUpload: async () => ({ ETag: '"complete"', ChecksumCRC32: 'composite' }),
  AbortMultipartUpload: async () => ({}),
  PutObject: async (input) => ({ ETag: '"put"', ChecksumCRC32: input.ChecksumCRC32 }),
};

/** An S3 client whose commands are answered by handlers (the defaults unless given); it records what was sent. */
function fakeS3(handlers: Partial<Record<CommandName, Handler>> = {}) {
  const sent: Sent[] = [];
  const client = {
    async send(command: { constructor: { name: string }; input: Input }, options?: { abortSignal?: AbortSignal }) {
      const name = command.constructor.name.replace(/Command$/, '') as CommandName;
      sent.push({ command: name, input: command.input, body: bodyOf(command.input) });
      const signal = options?.abortSignal;
      if (signal?.aborted === true) throw requestAborted();
      return (handlers[name] ?? defaults[name])(command.input, signal);
    },
  };
  const names = () => sent.map((s) => s.command);
  return { client: client as unknown as S3Client, sent, names };
}

/** The SDK's error for a request cancelled through its abortSignal (not the upload's own error). */
function requestAborted(): Error {
  const err = new Error('Request aborted (fake)');
  err.name = 'AbortError';
  return err;
}

/**
 * A request in flight: it rejects as the SDK does when its abortSignal fires; without a signal (or if the signal
 * never fires) it answers `answer` after `fallbackMs`. `outcome` tells which happened.
 */
function inFlight(signal: AbortSignal | undefined, answer: object, fallbackMs = 100) {
  const state: { outcome: 'pending' | 'cancelled' | 'answered' } = { outcome: 'pending' };
  const done = new Promise<object>((resolve, reject) => {
    const timer = setTimeout(() => {
      state.outcome = 'answered';
      resolve(answer);
    }, fallbackMs);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        state.outcome = 'cancelled';
        reject(requestAborted());
      },
      { once: true },
    );
  });
  return { state, done };
}

/** A ByteSource over `data`; it counts its reads and whether it was read to its end. */
function bufferSource(data: Buffer) {
  let position = 0;
  const stats = { reads: 0, atEnd: false };
  const source: ByteSource = {
    async read(target) {
      stats.reads++;
      const n = data.copy(target, 0, position);
      position += n;
      if (position === data.length) stats.atEnd = true;
      return n;
    },
  };
  return { source, stats };
}

const patterned = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
const partCrc = (b: Buffer) => crc32Base64(crc32(b));

describe('uploadStream: multipart', () => {
  it('sends every part with its CRC32, lists each echoed ChecksumCRC32 in CompleteMultipartUpload, in order', async () => {
    const data = patterned(45);
    const s3 = fakeS3();
    const result = await uploadStream(s3.client, { ...PARAMS, IfNoneMatch: '*' }, bufferSource(data).source, { partSize: 8, queueSize: 2 });
    expect(result).toEqual({ ETag: '"complete"', ChecksumCRC32: 'composite' });
    expect(s3.names()).toEqual(['CreateMultipartUpload', ...Array<string>(6).fill('UploadPart'), 'CompleteMultipartUpload']);
    const parts = s3.sent.filter((s) => s.command === 'UploadPart');
    expect(Buffer.concat(parts.map((p) => p.body ?? Buffer.alloc(0)))).toEqual(data);
    const expected = [0, 8, 16, 24, 32, 40].map((at, i) => ({ PartNumber: i + 1, ETag: `"e${i + 1}"`, ChecksumCRC32: partCrc(data.subarray(at, at + 8)) }));
    expect(parts.map((p) => p.input.ChecksumCRC32)).toEqual(expected.map((p) => p.ChecksumCRC32));
    const complete = s3.sent.at(-1);
    expect(complete?.input).toEqual({ Bucket: 'b', Key: 'k', UploadId: 'up-1', MultipartUpload: { Parts: expected }, IfNoneMatch: '*' });
  });

  /** A fake S3 whose UploadParts each take `ms`; `most()` is the largest number that were in flight at once. */
  function slowParts(ms: number) {
    let active = 0;
    let most = 0;
    const s3 = fakeS3({
      UploadPart: async (input) => {
        active++;
        most = Math.max(most, active);
        await new Promise((resolve) => setTimeout(resolve, ms));
        active--;
        return { ETag: `"e${String(input.PartNumber)}"` };
      },
    });
    return { ...s3, most: () => most };
  }

  it('keeps at most queueSize parts in flight', async () => {
    const s3 = slowParts(2);
    await uploadStream(s3.client, PARAMS, bufferSource(patterned(56)).source, { partSize: 8, queueSize: 2 });
    expect(s3.names().filter((n) => n === 'UploadPart')).toHaveLength(7);
    expect(s3.most()).toBe(2);
  });

  it('reads the parts into max(queueSize, 2) buffers, reused, and still keeps queueSize parts in flight', async () => {
    for (const queueSize of [1, 3]) {
      const s3 = slowParts(5);
      const data = patterned(80);
      const { source } = bufferSource(data);
      const buffers = new Set<ArrayBufferLike>();
      const counting: ByteSource = { read: (target) => (buffers.add(target.buffer), source.read(target)) };
      await uploadStream(s3.client, PARAMS, counting, { partSize: 8, queueSize });
      const parts = s3.sent.filter((x) => x.command === 'UploadPart');
      expect(Buffer.concat(parts.map((p) => p.body ?? Buffer.alloc(0)))).toEqual(data);
      expect(buffers.size).toBe(Math.max(queueSize, 2));
      expect(s3.most()).toBe(queueSize);
    }
  });

  it('reports the bytes acknowledged after each part', async () => {
    const loaded: number[] = [];
    await uploadStream(fakeS3().client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1, onProgress: (n) => loaded.push(n) });
    expect(loaded).toEqual([8, 16, 20]);
  });

  it('a failing UploadPart is the error of the upload: no more parts, the source left unread, the upload aborted', async () => {
    const refused = new Error('part 1 refused (marked)');
    const s3 = fakeS3({ UploadPart: async () => Promise.reject(refused) });
    const { source, stats } = bufferSource(patterned(64));
    const err = await uploadStream(s3.client, PARAMS, source, { partSize: 8, queueSize: 1 }).catch((e: unknown) => e);
    expect(err).toBe(refused);
    expect((err as Error).message).not.toMatch(/parts sent but/);
    expect(s3.names()).toEqual(['CreateMultipartUpload', 'UploadPart', 'AbortMultipartUpload']);
    expect(stats.atEnd).toBe(false);
  });

  it('an UploadPart answered without an ETag fails the upload, which is aborted', async () => {
    const s3 = fakeS3({ UploadPart: async () => ({}) });
    await expect(uploadStream(s3.client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1 })).rejects.toThrow(
      /^UploadPart 1 of s3:\/\/b\/k answered without an ETag$/,
    );
    expect(s3.names()).toContain('AbortMultipartUpload');
    expect(s3.names()).not.toContain('CompleteMultipartUpload');
  });

  it('a CreateMultipartUpload answered without an UploadId fails the upload', async () => {
    const s3 = fakeS3({ CreateMultipartUpload: async () => ({}) });
    await expect(uploadStream(s3.client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1 })).rejects.toThrow(
      /^CreateMultipartUpload of s3:\/\/b\/k answered without an UploadId$/,
    );
    expect(s3.names()).toEqual(['CreateMultipartUpload']);
  });
});

describe('uploadStream: the caller stops it through its signal', () => {
  it('mid-multipart: the part in flight is cancelled, the upload aborted, nothing completed; the error is AbortError with the reason as cause', async () => {
    const caller = new AbortController();
    const reason = new Error('caller gave up (marked)');
    let part2: ReturnType<typeof inFlight> | undefined;
    const s3 = fakeS3({
      UploadPart: async (input, signal) => {
        if (input.PartNumber !== 2) return defaults.UploadPart(input, signal);
        part2 = inFlight(signal, { ETag: '"e2"' });
        caller.abort(reason);
        return part2.done;
      },
    });
    const err = await uploadStream(s3.client, PARAMS, bufferSource(patterned(40)).source, { partSize: 8, queueSize: 2, signal: caller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ name: 'AbortError', message: 'Upload aborted.' });
    expect((err as Error).cause).toBe(reason);
    expect(part2?.state.outcome).toBe('cancelled');
    expect(s3.names()).toContain('AbortMultipartUpload');
    expect(s3.names()).not.toContain('CompleteMultipartUpload');
    expect(getEventListeners(caller.signal, 'abort')).toEqual([]);
  });

  it('during a single PutObject: the PUT is cancelled and the upload rejects with its own AbortError, not the request error', async () => {
    const caller = new AbortController();
    let put: ReturnType<typeof inFlight> | undefined;
    const s3 = fakeS3({
      PutObject: async (_input, signal) => {
        put = inFlight(signal, { ETag: '"put"' });
        caller.abort(new Error('stop'));
        return put.done;
      },
    });
    const err = await uploadStream(s3.client, PARAMS, bufferSource(patterned(5)).source, { partSize: 8, queueSize: 1, signal: caller.signal }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'AbortError', message: 'Upload aborted.' });
    expect(put?.state.outcome).toBe('cancelled');
  });

  it('during CreateMultipartUpload: the create is cancelled, so no upload id arrives and none is aborted', async () => {
    const caller = new AbortController();
    let create: ReturnType<typeof inFlight> | undefined;
    const s3 = fakeS3({
      CreateMultipartUpload: async (_input, signal) => {
        create = inFlight(signal, { UploadId: 'late' });
        caller.abort(new Error('stop'));
        return create.done;
      },
    });
    const err = await uploadStream(s3.client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1, signal: caller.signal }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'AbortError', message: 'Upload aborted.' });
    expect(create?.state.outcome).toBe('cancelled');
    expect(s3.names()).toEqual(['CreateMultipartUpload']);
  });

  it('during CompleteMultipartUpload: the complete is cancelled, the upload rejects and is aborted', async () => {
    const caller = new AbortController();
    let complete: ReturnType<typeof inFlight> | undefined;
    const s3 = fakeS3({
      CompleteMultipartUpload: async (_input, signal) => {
        complete = inFlight(signal, { ETag: '"complete"' });
        caller.abort(new Error('stop'));
        return complete.done;
      },
    });
    const err = await uploadStream(s3.client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1, signal: caller.signal }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'AbortError', message: 'Upload aborted.' });
    expect(complete?.state.outcome).toBe('cancelled');
    expect(s3.names().at(-1)).toBe('AbortMultipartUpload');
  });

  it('removes its abort listener from the signal once the upload resolved or failed', async () => {
    const caller = new AbortController();
    await uploadStream(fakeS3().client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1, signal: caller.signal });
    expect(getEventListeners(caller.signal, 'abort')).toEqual([]);
    await uploadStream(fakeS3().client, PARAMS, bufferSource(patterned(5)).source, { partSize: 8, queueSize: 1, signal: caller.signal });
    expect(getEventListeners(caller.signal, 'abort')).toEqual([]);
    const failing = fakeS3({ UploadPart: async () => Promise.reject(new Error('refused')) });
    await expect(uploadStream(failing.client, PARAMS, bufferSource(patterned(20)).source, { partSize: 8, queueSize: 1, signal: caller.signal })).rejects.toThrow('refused');
    expect(getEventListeners(caller.signal, 'abort')).toEqual([]);
    expect(caller.signal.aborted).toBe(false);
  });
});

describe('uploadStream: part buffers from one upload to the next (partBufferPool.ts)', () => {
  /** A source over `data` that records the ArrayBuffers it was asked to fill. */
  function recordingSource(data: Buffer) {
    const { source } = bufferSource(data);
    const buffers = new Set<ArrayBufferLike>();
    const recording: ByteSource = { read: (target) => (buffers.add(target.buffer), source.read(target)) };
    return { source: recording, buffers };
  }
  // Each test has its own part size: the pool drops the buffers of another size, so no test sees another's.

  it('the next upload of the process fills the buffers of the last one that succeeded, and sends its own bytes', async () => {
    const first = recordingSource(patterned(33));
    await uploadStream(fakeS3().client, PARAMS, first.source, { partSize: 11, queueSize: 2 });
    expect(first.buffers.size).toBe(2);
    expect(idlePartBuffers()).toBe(2);
    const data = Buffer.from(patterned(30).map((b) => b ^ 0x5a));
    const second = recordingSource(data);
    const s3 = fakeS3();
    await uploadStream(s3.client, PARAMS, second.source, { partSize: 11, queueSize: 2 });
    expect([...second.buffers].every((b) => first.buffers.has(b))).toBe(true);
    expect(Buffer.concat(s3.sent.filter((x) => x.command === 'UploadPart').map((p) => p.body ?? Buffer.alloc(0)))).toEqual(data);
    // A single PutObject gives its buffers back too.
    const small = recordingSource(patterned(5));
    await uploadStream(fakeS3().client, PARAMS, small.source, { partSize: 11, queueSize: 2 });
    expect([...small.buffers].every((b) => first.buffers.has(b))).toBe(true);
    expect(idlePartBuffers()).toBe(2);
  });

  it('a failed or aborted upload gives none back: a cancelled request may still hold one', async () => {
    const options = { partSize: 13, queueSize: 2 };
    await uploadStream(fakeS3().client, PARAMS, bufferSource(patterned(52)).source, options);
    expect(idlePartBuffers()).toBe(2);
    const failing = fakeS3({ UploadPart: async () => Promise.reject(new Error('refused (marked)')) });
    await expect(uploadStream(failing.client, PARAMS, bufferSource(patterned(52)).source, options)).rejects.toThrow('refused (marked)');
    expect(idlePartBuffers()).toBe(0);

    await uploadStream(fakeS3().client, PARAMS, bufferSource(patterned(52)).source, options);
    expect(idlePartBuffers()).toBe(2);
    const caller = new AbortController();
    const stopping = fakeS3({
      UploadPart: async (_input, signal) => {
        caller.abort(new Error('caller gave up'));
        return inFlight(signal, { ETag: '"late"' }).done;
      },
    });
    await expect(uploadStream(stopping.client, PARAMS, bufferSource(patterned(52)).source, { ...options, signal: caller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(idlePartBuffers()).toBe(0);
  });

  it('holds buffers of the part size in use only', () => {
    const a = takePartBuffer(17);
    givePartBuffers([a, a, Buffer.alloc(16)]);
    expect(idlePartBuffers()).toBe(1);
    expect(takePartBuffer(17)).toBe(a);
    givePartBuffers([a]);
    expect(takePartBuffer(19)).not.toBe(a);
    expect(idlePartBuffers()).toBe(0);
  });
});
