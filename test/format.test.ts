import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AuthenticationError, InvalidRangeError, MalformedHeaderError, TruncatedError, UnknownKeyIdError } from '../src/core/errors.ts';
import { KeyRing } from '../src/core/keyRing.ts';
import { Secret } from '../src/core/secret.ts';
import {
  checkRange,
  ciphertextSize,
  createDecryptStream,
  createEncryptStream,
  HEADER_SIZE,
  isChunkLog2,
  MAX_CHUNK_LOG2,
  MIN_CHUNK_LOG2,
  parseHeader,
  planRange,
  TAG_SIZE,
  type DecryptOptions,
} from '../src/core/format/index.ts';
import { plaintextSizeOf } from './support/layoutOracle.ts';

const resolve = async (s: Secret) => s.reveal();
const ring = (current: string | undefined, previous: string[] = []) => KeyRing.fromSecrets(current === undefined ? undefined : new Secret(current), previous.map((p) => new Secret(p)), resolve);
const ID = { dataspace: 'logs', segmentId: 'seg-1' };

async function encrypt(plain: Buffer, chunkLog2: number, secret = 'codec-test-secret', identity = ID): Promise<Buffer> {
  const r = await ring(secret);
  const out: Buffer[] = [];
  // Feed in uneven pieces so chunking does not depend on how the input arrives.
  const pieces: Buffer[] = [];
  for (let i = 0; i < plain.length; i += 7777) pieces.push(plain.subarray(i, i + 7777));
  for await (const c of Readable.from(pieces).pipe(createEncryptStream({ key: r.current!, identity, chunkLog2 }))) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** Decrypts; returns what was released before any error, and the error. */
async function decrypt(bytes: Buffer, options: Partial<DecryptOptions> & { keyRing: KeyRing }): Promise<{ out: Buffer; err?: unknown }> {
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 5003) pieces.push(bytes.subarray(i, i + 5003));
  try {
    for await (const c of Readable.from(pieces).pipe(createDecryptStream({ identity: ID, ...options }))) out.push(c as Buffer);
    return { out: Buffer.concat(out) };
  } catch (err) {
    return { out: Buffer.concat(out), err };
  }
}

describe('format v1 golden vector', () => {
  // Computed once and cross-checked with an independent implementation of docs/FORMAT.md (Python: hashlib.scrypt,
  // cryptography's HKDF and AESGCM), which produced the same bytes.
  const GOLDEN =
    '424b533101011000f06edb2bf9cce745000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' +
    'c475e57237660729b34a3c70a281007bf9502f07f5aac90776e2fdddafb8ade213b9ce8ef8';

  it('encrypts exactly as specified', async () => {
    const r = await ring('golden-secret');
    expect(r.current!.keyIdHex).toBe('f06edb2bf9cce745');
    expect(r.current!.master.toString('hex')).toBe('5bc6cc46e756aec06fe9452d5cb916c8ec7835d4cc8da7d8522257d81c5885eb');
    const salt = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const out: Buffer[] = [];
    for await (const c of Readable.from([Buffer.from('hello, bucket-storage')]).pipe(createEncryptStream({ key: r.current!, identity: ID, chunkLog2: 16, salt }))) out.push(c as Buffer);
    const bytes = Buffer.concat(out);
    expect(bytes.toString('hex')).toBe(GOLDEN);
    // The header, field by field.
    expect(bytes.subarray(0, 4).toString('ascii')).toBe('BKS1');
    expect([bytes[4], bytes[5], bytes[6], bytes[7]]).toEqual([1, 1, 16, 0]);
    expect(bytes.subarray(8, 16).toString('hex')).toBe('f06edb2bf9cce745');
    expect(bytes.subarray(16, 48).equals(salt)).toBe(true);
    expect(bytes.length).toBe(HEADER_SIZE + 21 + TAG_SIZE);
    const back = await decrypt(Buffer.from(GOLDEN, 'hex'), { keyRing: r });
    expect(back.out.toString()).toBe('hello, bucket-storage');
  });
});

describe('round trips', () => {
  for (const log2 of [16, 20]) {
    const chunk = 2 ** log2;
    for (const size of [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 7]) {
      it(`chunk-log2 ${log2}, ${size} bytes, length unknown and known`, async () => {
        const plain = randomBytes(size);
        const sealed = await encrypt(plain, log2);
        expect(sealed.length).toBe(ciphertextSize(size, log2));
        expect(plaintextSizeOf(sealed.length, log2)).toBe(size);
        const r = await ring('codec-test-secret');
        for (const plaintextSize of [undefined, size]) {
          const { out, err } = await decrypt(sealed, { keyRing: r, ...(plaintextSize === undefined ? {} : { plaintextSize }) });
          expect(err).toBeUndefined();
          expect(out.equals(plain)).toBe(true);
        }
      });
    }
  }

  it('however the stored bytes arrive: one byte at a time, header included', async () => {
    const plain = randomBytes(2 ** 16 + 100);
    const sealed = await encrypt(plain, 16);
    const r = await ring('codec-test-secret');
    for (const plaintextSize of [undefined, plain.length]) {
      const out: Buffer[] = [];
      const bytes = (function* () {
        for (let i = 0; i < sealed.length; i++) yield sealed.subarray(i, i + 1);
      })();
      for await (const c of Readable.from(bytes).pipe(createDecryptStream({ keyRing: r, identity: ID, ...(plaintextSize === undefined ? {} : { plaintextSize }) }))) out.push(c as Buffer);
      expect(Buffer.concat(out).equals(plain)).toBe(true);
    }
  });

  it('plaintextSizeOf refuses sizes no plaintext has', () => {
    expect(plaintextSizeOf(HEADER_SIZE + 5, 16)).toBeUndefined();
    expect(plaintextSizeOf(HEADER_SIZE + 2 ** 16 + TAG_SIZE + 10, 16)).toBeUndefined();
  });
});

describe('header and range bounds', () => {
  it('the chunk size is 2^16..2^24: the writer refuses any other', async () => {
    expect([MIN_CHUNK_LOG2, MAX_CHUNK_LOG2]).toEqual([16, 24]);
    expect([15, 16, 24, 25, 20.5].map(isChunkLog2)).toEqual([false, true, true, false, false]);
    const key = (await ring('codec-test-secret')).current!;
    for (const chunkLog2 of [15, 25, 20.5]) expect(() => createEncryptStream({ key, identity: ID, chunkLog2 })).toThrow(MalformedHeaderError);
  });

  it('one range check, for plain and encrypted segments alike', () => {
    expect(() => checkRange(10, 0, 9)).not.toThrow();
    expect(() => checkRange(10, 3, 3)).not.toThrow();
    expect(() => checkRange(10, 0, 10)).toThrow(/ends past the segment's last byte \(9; size 10\)/);
    expect(() => checkRange(10, 4, 3)).toThrow(/reversed/);
    expect(() => checkRange(10, 0.5, 3)).toThrow(/whole numbers/);
    expect(() => checkRange(0, 0, 0)).toThrow(/the segment is empty/);
    expect(() => planRange(0, 16, 0, 0)).toThrow(/the segment is empty/);
  });

  it('a ranged decrypt without the header or the plaintext size is refused up front', async () => {
    const keyRing = await ring('codec-test-secret');
    const range = planRange(100, 16, 0, 9);
    expect(() => createDecryptStream({ keyRing, identity: ID, range, plaintextSize: 100 })).toThrow(InvalidRangeError);
    expect(() => createDecryptStream({ keyRing, identity: ID, range, header: Buffer.alloc(HEADER_SIZE) })).toThrow(InvalidRangeError);
  });
});

describe('ranged decrypt', () => {
  const log2 = 16;
  const chunk = 2 ** log2;
  const size = 5 * chunk + 123;
  const plain = randomBytes(size);
  const sealedP = encrypt(plain, log2);

  async function readRange(start: number, end: number): Promise<Buffer> {
    const sealed = await sealedP;
    const plan = planRange(size, log2, start, end);
    const span = sealed.subarray(plan.cipherStart, plan.cipherEnd + 1);
    const { out, err } = await decrypt(span, { keyRing: await ring('codec-test-secret'), header: sealed.subarray(0, HEADER_SIZE), range: plan, plaintextSize: size });
    if (err) throw err;
    return out;
  }

  it('property: any range equals the slice of the plaintext, from one contiguous span', async () => {
    const boundary = fc.constantFrom(0, chunk - 1, chunk, 2 * chunk, 5 * chunk - 1, 5 * chunk, size - 1);
    const offset = fc.oneof(fc.nat(size - 1), boundary);
    await fc.assert(
      fc.asyncProperty(offset, offset, async (a, b) => {
        const [start, end] = a <= b ? [a, b] : [b, a];
        expect((await readRange(start, end)).equals(plain.subarray(start, end + 1))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('chunk-aligned ranges and the last byte', async () => {
    for (const [s, e] of [[0, chunk - 1], [chunk, 2 * chunk - 1], [size - 1, size - 1], [0, size - 1], [5 * chunk, size - 1]] as const) {
      expect((await readRange(s, e)).equals(plain.subarray(s, e + 1))).toBe(true);
    }
  });

  it('the span of a range covers exactly its chunks', () => {
    const plan = planRange(size, log2, chunk + 5, 2 * chunk + 5);
    expect(plan).toMatchObject({ firstChunk: 1, lastChunk: 2, cipherStart: HEADER_SIZE + (chunk + TAG_SIZE), cipherEnd: HEADER_SIZE + 3 * (chunk + TAG_SIZE) - 1, skip: 5, length: chunk + 1 });
    const last = planRange(size, log2, size - 1, size - 1);
    expect(last.cipherEnd).toBe(ciphertextSize(size, log2) - 1);
  });

  it('reversed and out-of-bounds ranges are refused', () => {
    expect(() => planRange(size, log2, 10, 9)).toThrow(InvalidRangeError);
    expect(() => planRange(size, log2, 0, size)).toThrow(InvalidRangeError);
    expect(() => planRange(size, log2, -1, 3)).toThrow(InvalidRangeError);
    expect(() => planRange(0, log2, 0, 0)).toThrow(InvalidRangeError);
  });
});

describe('tamper matrix: the typed error, and nothing released past the failing chunk', () => {
  const log2 = 16;
  const chunk = 2 ** log2;
  const size = 4 * chunk + 99; // chunks 0..4
  const plain = randomBytes(size);
  const sealedP = encrypt(plain, log2);
  const cs = chunk + TAG_SIZE;
  const chunkAt = (sealed: Buffer, i: number) => sealed.subarray(HEADER_SIZE + i * cs, Math.min(sealed.length, HEADER_SIZE + (i + 1) * cs));

  async function expectFailure<E extends Error>(bytes: Buffer, type: abstract new (...a: never[]) => E, failingChunk: number | undefined, options: { sizeKnown?: boolean; secret?: string; previous?: string[]; identity?: typeof ID } = {}): Promise<E> {
    const keyRing = await ring(options.secret ?? 'codec-test-secret', options.previous ?? []);
    const out: Buffer[] = [];
    let err: unknown;
    try {
      const stream = Readable.from([bytes]).pipe(createDecryptStream({ keyRing, identity: options.identity ?? ID, ...(options.sizeKnown ? { plaintextSize: size } : {}) }));
      for await (const c of stream) out.push(c as Buffer);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(type);
    const released = Buffer.concat(out);
    // Only whole, authenticated chunks before the failing one were released.
    expect(released.length % chunk).toBe(0);
    expect(released.equals(plain.subarray(0, released.length))).toBe(true);
    if (failingChunk !== undefined) {
      expect(released.length).toBeLessThanOrEqual(failingChunk * chunk);
      if (err instanceof AuthenticationError || err instanceof TruncatedError) expect(err.chunkIndex).toBe(failingChunk);
    }
    if (!(err instanceof type)) throw new Error('not reached: checked above');
    return err;
  }

  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    c[at] = (c[at] ?? 0) ^ 0x01;
    return c;
  };

  it('bit flip in the header (salt, key id, chunk size, magic)', async () => {
    const s = await sealedP;
    await expectFailure(flip(s, 20), AuthenticationError, 0);
    await expectFailure(flip(s, 9), UnknownKeyIdError, 0);
    await expectFailure(flip(s, 0), MalformedHeaderError, 0);
    await expectFailure(flip(s, 6), AuthenticationError, 0); // 16 → 17: a valid header, but not the one sealed
    const badVersion = Buffer.from(s);
    badVersion[4] = 2;
    await expectFailure(badVersion, MalformedHeaderError, 0);
    await expectFailure(flip(s, 5), MalformedHeaderError, 0); // algorithm 1 → 0
    await expectFailure(flip(s, 7), MalformedHeaderError, 0); // reserved 0 → 1
  });

  it('bit flip in a ciphertext and in a tag', async () => {
    const s = await sealedP;
    await expectFailure(flip(s, HEADER_SIZE + 2 * cs + 100), AuthenticationError, 2);
    await expectFailure(flip(s, HEADER_SIZE + 3 * cs - 1), AuthenticationError, 2);
  });

  it('chunk dropped, repeated, swapped', async () => {
    const s = await sealedP;
    const header = s.subarray(0, HEADER_SIZE);
    const c = [0, 1, 2, 3, 4].map((i) => chunkAt(s, i));
    await expectFailure(Buffer.concat([header, c[0]!, c[2]!, c[3]!, c[4]!]), AuthenticationError, 1);
    await expectFailure(Buffer.concat([header, c[0]!, c[1]!, c[1]!, c[2]!, c[3]!, c[4]!]), AuthenticationError, 2);
    await expectFailure(Buffer.concat([header, c[0]!, c[2]!, c[1]!, c[3]!, c[4]!]), AuthenticationError, 1);
    // The last chunk moved up; and the tail dropped, so a middle chunk stands last: that is a truncation.
    await expectFailure(Buffer.concat([header, c[0]!, c[4]!]), AuthenticationError, 1);
    await expectFailure(Buffer.concat([header, c[0]!, c[1]!]), TruncatedError, 2);
  });

  it('truncation mid-chunk and at a chunk boundary (length unknown)', async () => {
    const s = await sealedP;
    await expectFailure(s.subarray(0, HEADER_SIZE + 2 * cs + 500), AuthenticationError, 2);
    expect((await expectFailure(s.subarray(0, HEADER_SIZE + 3 * cs), TruncatedError, 3)).message).toMatch(/at a chunk boundary after chunk 2 /);
    await expectFailure(s.subarray(0, HEADER_SIZE + cs), TruncatedError, 1);
    expect((await expectFailure(s.subarray(0, HEADER_SIZE + 3 * cs + 5), TruncatedError, 3)).message).toMatch(/inside chunk 3 \(5 bytes, shorter than a tag\)/);
    expect((await expectFailure(s.subarray(0, HEADER_SIZE), TruncatedError, 0)).message).toMatch(/a header but no chunk/);
    await expectFailure(s.subarray(0, 20), MalformedHeaderError, 0);
    expect((await expectFailure(Buffer.alloc(0), MalformedHeaderError, 0)).message).toMatch(/ended after 0 bytes/);
  });

  it('truncation mid-chunk and at a chunk boundary (size known from metadata): TruncatedError', async () => {
    const s = await sealedP;
    await expectFailure(s.subarray(0, HEADER_SIZE + 2 * cs + 500), TruncatedError, 2, { sizeKnown: true });
    await expectFailure(s.subarray(0, HEADER_SIZE + 3 * cs), TruncatedError, 3, { sizeKnown: true });
    await expectFailure(s.subarray(0, s.length - 1), TruncatedError, 4, { sizeKnown: true });
    await expectFailure(Buffer.concat([s, Buffer.from([0])]), AuthenticationError, undefined, { sizeKnown: true });
  });

  it('the header of another object', async () => {
    const s = await sealedP;
    const other = await encrypt(randomBytes(100), log2);
    await expectFailure(Buffer.concat([other.subarray(0, HEADER_SIZE), s.subarray(HEADER_SIZE)]), AuthenticationError, 0);
  });

  it('an object decrypted under another segment name', async () => {
    await expectFailure(await sealedP, AuthenticationError, 0, { identity: { dataspace: 'logs', segmentId: 'seg-2' } });
    await expectFailure(await sealedP, AuthenticationError, 0, { identity: { dataspace: 'other', segmentId: 'seg-1' } });
  });

  it('a wrong key, and an unknown key id, are UnknownKeyIdError naming the id', async () => {
    await expectFailure(await sealedP, UnknownKeyIdError, 0, { secret: 'another-secret' });
    const s = await sealedP;
    const err = await decrypt(s, { keyRing: await ring('another-secret', ['yet-another']) });
    expect((err.err as UnknownKeyIdError).keyId).toBe(parseHeader(s).keyId.toString('hex'));
    expect((err.err as Error).message).toContain('S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS');
  });

  it('a previous key still decrypts, and never writes', async () => {
    const s = await sealedP;
    const rotated = await ring('new-secret', ['codec-test-secret']);
    const { out, err } = await decrypt(s, { keyRing: rotated });
    expect(err).toBeUndefined();
    expect(out.equals(plain)).toBe(true);
    expect(rotated.current!.keyIdHex).not.toBe(parseHeader(s).keyId.toString('hex'));
  });
});

describe('bounded memory', () => {
  it('a 256 MiB stream encrypts and decrypts with bounded memory growth', async () => {
    const r = await ring('codec-test-secret');
    const total = 256 * 1024 * 1024;
    const block = Buffer.alloc(1 << 20, 7);
    let left = total;
    const source = new Readable({
      read() {
        if (left === 0) return void this.push(null);
        left -= block.length;
        this.push(block);
      },
    });
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    let seen = 0;
    const stream = source.pipe(createEncryptStream({ key: r.current!, identity: ID })).pipe(createDecryptStream({ keyRing: r, identity: ID }));
    for await (const c of stream) {
      seen += (c as Buffer).length;
      if ((seen & ((16 << 20) - 1)) === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    expect(seen).toBe(total);
    expect(peak - before).toBeLessThan(96 * 1024 * 1024);
  });
});
