/**
 * Reads the bytes of a stored object as one ordered stream, either with one streaming GET or with a small
 * bounded pipeline of ranged GETs: up to `concurrency` parts of `partSize` bytes in flight, handed on in
 * order. Memory is bounded by concurrency × partSize whatever the object's size (the lib-storage pattern,
 * read side). Every GET carries If-Match with the ETag of the HEAD, so all parts come from one object.
 */
import { finished, Readable } from 'node:stream';
import { BucketStorageError, StorageError, TruncatedError } from '../core/errors.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';

/** The store operations a read needs (an S3Store, or a wrapper of one in tests). */
export type GetStore = Pick<S3Store, 'get'>;

export interface ObjectSpan {
  readonly ref: BucketRef;
  readonly key: string;
  /** Bytes of the object the HEAD reported. */
  readonly size: number;
  readonly etag: string | undefined;
}

export interface ReadOptions {
  /** Parts in flight; 1 reads the object with one streaming GET. */
  readonly concurrency: number;
  readonly partSize: number;
  readonly signal?: AbortSignal | undefined;
}

/** The whole object as a stream (nothing is requested for an empty object). */
export function readWholeObject(store: GetStore, span: ObjectSpan, options: ReadOptions): Readable {
  if (span.size === 0) return Readable.from([]);
  if (options.concurrency <= 1 || span.size <= options.partSize) {
    return lazyGet(store, span, undefined, options.signal);
  }
  const parts = new AbortController();
  const stream = Readable.from(chunksInOrder(store, span, options, parts), { objectMode: false, highWaterMark: 1 });
  // Destroyed before its end (an error downstream, a failed part): stop the parts in flight at once. Readable.from
  // ends the generator (its `finally` aborts them too) only after the part it awaits settles, and a stalled GET
  // can take until its timeout.
  const destroyGenerator = stream._destroy.bind(stream);
  stream._destroy = (err, done) => {
    if (!stream.readableEnded) parts.abort(new Error('restore stopped'));
    destroyGenerator(err, done);
  };
  return stream;
}

/** Exactly one ranged GET of the inclusive byte span start..end. */
export function readObjectRange(store: GetStore, span: ObjectSpan, start: number, end: number, signal?: AbortSignal): Readable {
  return lazyGet(store, span, { start, end }, signal);
}

/** Resumptions of one read after a connection broke mid-body (each resumes where the bytes stopped). */
export const RESUME_ATTEMPTS = 5;
const RESUMABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNREFUSED', 'UND_ERR_SOCKET']);

/**
 * True for failures a new request may cure: a connection reset or cut mid-body, or a StorageError the SDK
 * retries already gave up on as retryable. A body that ends cleanly but short is NOT resumed: the object
 * itself is short, and the size checks downstream report it as truncated.
 */
function isResumable(err: unknown): boolean {
  if (err instanceof StorageError) return err.retryable;
  if (err instanceof BucketStorageError || !(err instanceof Error)) return false;
  const code = 'code' in err ? String(err.code) : '';
  return RESUMABLE_CODES.has(code) || err.message === 'aborted' || err.name === 'TimeoutError';
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A stream that issues its GET when first read, so a failing pipeline set-up costs no request. If the
 * connection breaks mid-body, it resumes with a ranged GET from the first byte not yet passed on (If-Match
 * keeps every request on the same object version), at most RESUME_ATTEMPTS times. The body's chunks are
 * passed on as they come (no generator or promise per chunk: a restore's 16,000 chunks per GiB made that
 * a measurable share of its CPU), pausing the body while the consumer is full.
 */
class ResumableGet extends Readable {
  readonly #store: GetStore;
  readonly #span: ObjectSpan;
  readonly #ranged: boolean;
  readonly #last: number;
  readonly #signal: AbortSignal | undefined;
  /** The first byte not yet passed on. */
  #offset: number;
  #failures = 0;
  #body: Readable | undefined;
  #requesting = false;

  constructor(store: GetStore, span: ObjectSpan, range: { start: number; end: number } | undefined, signal: AbortSignal | undefined) {
    super({ highWaterMark: 1 << 20 });
    this.#store = store;
    this.#span = span;
    this.#ranged = range !== undefined;
    this.#offset = range?.start ?? 0;
    this.#last = range?.end ?? span.size - 1;
    this.#signal = signal;
  }

  override _read(): void {
    if (this.#body !== undefined) this.#body.resume();
    else if (!this.#requesting) void this.#request();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#body?.destroy();
    done(err);
  }

  /** GETs the bytes from #offset on (the whole object on the first request of a whole read). */
  async #request(): Promise<void> {
    this.#requesting = true;
    try {
      const resumed = !this.#ranged && this.#offset === 0 ? undefined : { start: this.#offset, end: this.#last };
      const body = await this.#store.get(this.#span.ref, this.#span.key, { range: resumed, signal: this.#signal, ifMatch: this.#span.etag });
      if (this.destroyed) {
        body.destroy();
        return;
      }
      this.#follow(body);
    } catch (err) {
      this.#failed(err);
    } finally {
      this.#requesting = false;
    }
  }

  #follow(body: Readable): void {
    this.#body = body;
    body.on('data', (chunk: unknown) => {
      const bytes = asBuffer(chunk);
      this.#offset += bytes.length;
      if (!this.push(bytes)) body.pause();
    });
    finished(body, (err) => {
      if (this.#body !== body) return;
      this.#body = undefined;
      if (err) this.#failed(err);
      else this.push(null); // a body that ends cleanly but short is not resumed: the size checks report it
    });
  }

  /** Resumes after a failure a new request may cure, or fails the stream. */
  #failed(err: unknown): void {
    if (this.destroyed) return;
    if (this.#signal?.aborted || this.#offset > this.#last || !isResumable(err) || ++this.#failures > RESUME_ATTEMPTS) {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#requesting = true;
    setTimeout(() => void this.#request(), 50 * 2 ** this.#failures);
  }
}

function lazyGet(store: GetStore, span: ObjectSpan, range: { start: number; end: number } | undefined, signal: AbortSignal | undefined): Readable {
  return new ResumableGet(store, span, range, signal);
}

/**
 * One ranged part, read whole as the chunks its body came in; retried from scratch when the connection breaks.
 * The chunks are not joined: joining copied every byte once more, into a fresh Buffer of the part's size that the
 * kernel mapped anew for every part (a 1 GiB restore with two parts in flight: 3.0–4.2 s of system time joined,
 * 1.8–2.6 as chunks; docs/DEVELOPMENT.md, "Ranged GETs in parallel").
 */
async function fetchPart(store: GetStore, span: ObjectSpan, start: number, end: number, signal: AbortSignal): Promise<Buffer[]> {
  for (let failures = 0; ; ) {
    try {
      return await fetchPartOnce(store, span, start, end, signal);
    } catch (err) {
      if (signal.aborted || !isResumable(err) || ++failures > RESUME_ATTEMPTS) throw err;
      await pause(50 * 2 ** failures);
    }
  }
}

async function fetchPartOnce(store: GetStore, span: ObjectSpan, start: number, end: number, signal: AbortSignal): Promise<Buffer[]> {
  const stream = await store.get(span.ref, span.key, { range: { start, end }, signal, ifMatch: span.etag });
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const b = asBuffer(chunk);
    chunks.push(b);
    length += b.length;
  }
  if (length !== end - start + 1) {
    throw new TruncatedError(
      `s3://${span.ref.bucket}/${span.key}: bytes ${start}-${end} came back as ${length} bytes; the object is shorter than its HEAD said (changed during the restore?)`,
    );
  }
  return chunks;
}

/** The chunks of every part, in the object's order. */
async function* chunksInOrder(store: GetStore, span: ObjectSpan, options: ReadOptions, controller: AbortController): AsyncGenerator<Buffer> {
  // A plain loop, not `yield*`: delegating to an array's iterator, which has no `throw`, could replace an error.
  for await (const part of partsInOrder(store, span, options, controller)) for (const chunk of part) yield chunk;
}

async function* partsInOrder(store: GetStore, span: ObjectSpan, options: ReadOptions, controller: AbortController): AsyncGenerator<Buffer[]> {
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const inFlight: Promise<Buffer[]>[] = [];
  let next = 0;
  const launch = () => {
    const start = next;
    const end = Math.min(span.size, start + options.partSize) - 1;
    next = end + 1;
    const part = fetchPart(store, span, start, end, controller.signal);
    part.catch(() => undefined); // observed when awaited in order; never an unhandled rejection
    inFlight.push(part);
  };
  try {
    while (next < span.size && inFlight.length < options.concurrency) launch();
    for (let part = inFlight.shift(); part !== undefined; part = inFlight.shift()) {
      const bytes = await part;
      if (next < span.size) launch();
      yield bytes;
    }
  } finally {
    // Early exit (error downstream, abort): stop the parts still in flight.
    if (inFlight.length > 0) controller.abort(new Error('restore stopped'));
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}
