/**
 * ByteSources in-process (src/core/byteSource.ts): the messages of CheckedBytes (digest read too early, truncated source, a byte too many, a digest
 * that differs); and macsEqual (src/core/digestMac.ts) on inputs that are not two 32-byte MACs. Written for the
 * survivors of the mutation run `upload` (notes: mut-uploadcore.md).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CheckedBytes, type ByteSource } from '../src/core/byteSource.ts';
import { digestMac, macsEqual } from '../src/core/digestMac.ts';
import { IntegrityError, TruncatedError } from '../src/core/errors.ts';

const patterned = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + 5) & 0xff));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A ByteSource over `data` that hands out at most `step` bytes per read (short reads before the end). */
function chunked(data: Buffer, step = data.length): ByteSource {
  let position = 0;
  return {
    async read(target) {
      const n = data.copy(target, 0, position, Math.min(data.length, position + Math.min(step, target.length)));
      position += n;
      return n;
    },
  };
}

describe('CheckedBytes', () => {
  it('refuses to tell its digest before the source was read to its end', async () => {
    const data = patterned(10);
    const checked = new CheckedBytes(chunked(data), { size: 10, digest: true, what: 'seg' });
    expect(await checked.read(Buffer.alloc(4))).toBe(4);
    expect(() => checked.sha256).toThrow(/^CheckedBytes: digest read before the source was read to its end$/);
    expect(await checked.read(Buffer.alloc(8))).toBe(6);
    expect(checked.sha256).toBe(sha256(data));
  });

  it('a source that ends before its size is truncated', async () => {
    const checked = new CheckedBytes(chunked(patterned(5)), { size: 8, digest: false, what: 'seg 1' });
    const err = await checked.read(Buffer.alloc(16)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedError);
    expect((err as Error).message).toBe('seg 1: ended after 5 of 8 bytes: it was truncated');
  });

  it('a source with a byte more than its size is a size mismatch', async () => {
    const checked = new CheckedBytes(chunked(patterned(9)), { size: 8, digest: false, what: 'seg 1' });
    const err = await checked.read(Buffer.alloc(16)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe('seg 1: size mismatch, expected 8, got more than 8 bytes');
  });

  it('a digest that differs names what it was compared with (the stored bks-sha256 by default)', async () => {
    const data = patterned(8);
    const wrong = sha256(Buffer.from('other'));
    const stored = new CheckedBytes(chunked(data), { size: 8, sha256: wrong, digest: false, what: 'seg 1' });
    await expect(stored.read(Buffer.alloc(8))).rejects.toThrow(`seg 1 (stored bks-sha256): sha256 mismatch, expected ${wrong}, got ${sha256(data)}`);
    const announced = new CheckedBytes(chunked(data), { size: 8, sha256: wrong, digest: false, what: 'seg 1', sha256Of: 'announced sha256' });
    const err = await announced.read(Buffer.alloc(8)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(`seg 1 (announced sha256): sha256 mismatch, expected ${wrong}, got ${sha256(data)}`);
  });
});

describe('macsEqual', () => {
  const h64 = 'ab'.repeat(32);
  it('is true only for two equal 32-byte hex MACs', () => {
    expect(macsEqual(h64, h64)).toBe(true);
    expect(macsEqual(h64, 'ac'.repeat(32))).toBe(false);
  });

  it('is false, without throwing, when either side is not 32 bytes', () => {
    expect(macsEqual('', '')).toBe(false);
    expect(macsEqual('ab', 'ab')).toBe(false);
    expect(macsEqual(h64, 'ab')).toBe(false);
    expect(macsEqual('ab', h64)).toBe(false);
  });
});

describe('digestMac', () => {
  it('is HMAC-SHA256 under an HKDF key whose info is "bucket-storage/v1 sha256-mac <dataspace>/<segment>"', () => {
    // Vector computed independently (Python hashlib/hmac: HKDF-SHA256 extract+expand, then HMAC-SHA256).
    const master = Buffer.alloc(32, 7);
    const salt = Buffer.alloc(16, 9);
    const digest = sha256(Buffer.from('hello'));
    expect(digestMac({ master }, salt, { dataspace: 'ds', segmentId: 'seg-1' }, digest)).toBe('9af10ebc6341bbe848a00f53d6641814a063d088a73675d9d80d4a545d700cfd');
  });
});
