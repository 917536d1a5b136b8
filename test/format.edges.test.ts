/**
 * Edges of the format v1 codec that the mutation run (docs/MUTATION.md) found untested: the text of each header
 * refusal, a header shorter than 48 bytes or with a chunk size outside 16..24, a tampered full-size final chunk
 * (AuthenticationError, not a truncation), a final chunk of exactly one tag after a full chunk, the message of a
 * sized truncation, a sealed chunk shorter than a tag, and ByteQueue's refusal to hand out bytes it does not hold.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AuthenticationError, InvalidRangeError, MalformedHeaderError, TruncatedError } from '../src/core/errors.ts';
import { KeyRing } from '../src/core/keyRing.ts';
import { Secret } from '../src/core/secret.ts';
import { ByteQueue } from '../src/core/format/byteQueue.ts';
import { ChunkCipher } from '../src/core/format/chunkCipher.ts';
import { createDecryptStream, createEncryptStream, HEADER_SIZE, parseHeader, planRange, TAG_SIZE, type DecryptOptions } from '../src/core/format/index.ts';

const ID = { dataspace: 'logs', segmentId: 'edges' };
const CHUNK = 2 ** 16;
const ringP = KeyRing.fromSecrets(new Secret('codec-edges-secret'), [], async (s) => s.reveal());

async function encrypt(plain: Buffer): Promise<Buffer> {
  const r = await ringP;
  const out: Buffer[] = [];
  for await (const c of Readable.from([plain]).pipe(createEncryptStream({ key: r.current!, identity: ID, chunkLog2: 16 }))) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function decryptError(bytes: Buffer, options: Partial<DecryptOptions> = {}): Promise<Error> {
  const keyRing = await ringP;
  try {
    for await (const _ of Readable.from([bytes]).pipe(createDecryptStream({ keyRing, identity: ID, ...options }))) void _;
  } catch (err) {
    return err as Error;
  }
  throw new Error('the decrypt did not fail');
}

const withByte = (b: Buffer, at: number, value: number): Buffer => {
  const c = Buffer.from(b);
  c[at] = value;
  return c;
};

describe('format v1 header refusals', () => {
  it('each malformed field is refused by name', async () => {
    const header = (await encrypt(Buffer.from('x'))).subarray(0, HEADER_SIZE);
    expect(parseHeader(header).chunkLog2).toBe(16);
    const refusal = (bytes: Buffer): string => {
      try {
        parseHeader(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(MalformedHeaderError);
        return (err as Error).message;
      }
      throw new Error('parseHeader accepted the bytes');
    };
    expect(refusal(header.subarray(0, HEADER_SIZE - 1))).toBe('header is 47 bytes; format v1 needs 48');
    expect(refusal(withByte(header, 0, 0x41))).toMatch(/^header does not start with "BKS1"/);
    expect(refusal(withByte(header, 4, 2))).toBe('header version 2 is not supported (expected 1)');
    expect(refusal(withByte(header, 5, 0))).toBe('header algorithm 0 is not supported (expected 1, AES-256-GCM)');
    expect(refusal(withByte(header, 6, 15))).toBe('header chunk log2 15 is outside 16..24');
    expect(refusal(withByte(header, 6, 25))).toBe('header chunk log2 25 is outside 16..24');
    expect(refusal(withByte(header, 7, 1))).toBe('header reserved byte is 1, expected 0');
  });

  it('the writer names the chunk size it refuses', async () => {
    const r = await ringP;
    expect(() => createEncryptStream({ key: r.current!, identity: ID, chunkLog2: 15 })).toThrow('chunk log2 15 is outside 16..24');
  });
});

describe('format v1 final chunks', () => {
  it('a tampered full-size final chunk (length unknown) is an AuthenticationError, not a truncation', async () => {
    const sealed = await encrypt(Buffer.alloc(CHUNK, 7)); // one chunk, and it is full
    expect(sealed.length).toBe(HEADER_SIZE + CHUNK + TAG_SIZE);
    const err = await decryptError(withByte(sealed, HEADER_SIZE + 10, (sealed[HEADER_SIZE + 10] ?? 0) ^ 1));
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as AuthenticationError).chunkIndex).toBe(0);
  });

  it('after a full chunk, a final piece of exactly one tag is a truncation (length unknown)', async () => {
    const sealed = await encrypt(Buffer.alloc(CHUNK + 1, 3)); // chunk 1 holds 1 byte: 17 bytes stored
    const err = await decryptError(sealed.subarray(0, sealed.length - 1));
    expect(err).toBeInstanceOf(TruncatedError);
    expect(err.message).toBe('object ends inside chunk 1 (16 bytes, shorter than a tag): it was truncated');
  });

  it('a truncation with the size known names the chunk and the bytes of it held', async () => {
    const sealed = await encrypt(Buffer.alloc(CHUNK + 100, 5));
    const err = await decryptError(sealed.subarray(0, sealed.length - 10), { plaintextSize: CHUNK + 100 });
    expect(err).toBeInstanceOf(TruncatedError);
    expect(err.message).toBe('object ends inside or before chunk 1 (106 bytes of it): it was truncated');
  });

  it('a ranged decrypt without the header says what it needs', async () => {
    const keyRing = await ringP;
    expect(() => createDecryptStream({ keyRing, identity: ID, range: planRange(10, 16, 0, 1) })).toThrow(
      new InvalidRangeError('a ranged decrypt needs the header and the plaintext size of the object'),
    );
  });

  it('a sealed chunk shorter than a tag does not open (no exception)', async () => {
    const keyRing = await ringP;
    const header = parseHeader((await encrypt(Buffer.from('x'))).subarray(0, HEADER_SIZE));
    const cipher = new ChunkCipher(keyRing.current!.master, header, ID);
    for (const n of [0, 3, TAG_SIZE - 1]) expect(cipher.open(0, true, Buffer.alloc(n))).toBeUndefined();
  });
});

describe('ByteQueue', () => {
  it('refuses to hand out more bytes than it holds', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('abc'));
    expect(() => q.take(5)).toThrow(new RangeError('ByteQueue: 5 bytes asked, 3 held'));
    expect(q.take(3).toString()).toBe('abc');
  });
});
