/**
 * bks-digest (src/core/sealedDigest.ts): it opens only for the object, segment and key it was sealed for; and the
 * meter that takes a digest known without hashing (src/core/verifyingMeter.ts) then counts the bytes only.
 */
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IntegrityError, TruncatedError } from '../src/core/errors.ts';
import { encodeHeader } from '../src/core/format/header.ts';
import { openDigest, sealDigest } from '../src/core/sealedDigest.ts';
import { Sha256Meter } from '../src/core/sha256Meter.ts';
import { VerifyingMeter } from '../src/core/verifyingMeter.ts';

const master = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const otherMaster = Buffer.from(Array.from({ length: 32 }, (_, i) => 255 - i));
const salt = Buffer.from(Array.from({ length: 32 }, (_, i) => 100 + i));
const keyId = Buffer.from('f06edb2bf9cce745', 'hex');
const header = encodeHeader(16, keyId, salt);
const identity = { dataspace: 'logs', segmentId: 'seg-1' };
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('sealDigest / openDigest', () => {
  it('a fixed vector, computed independently (Python: cryptography HKDF and AESGCM): 64 base64 characters that open to the digest', () => {
    const sealed = sealDigest(master, header, identity, sha('hello'));
    expect(sealed).toBe('5JKTs8pYgzIDljIlm6nt8ahoS0eHah8zhmjiTQSxElS1htZEvEzoaQn0eUT0vcHW');
    expect(sealed).toMatch(/^[A-Za-z0-9+/]{64}$/);
    expect(openDigest(master, header, identity, sealed)).toBe(sha('hello'));
  });

  it('opens only under the same master, salt, header and segment, and not once altered', () => {
    const sealed = sealDigest(master, header, identity, sha('hello'));
    expect(openDigest(otherMaster, header, identity, sealed)).toBeUndefined();
    expect(openDigest(master, encodeHeader(16, keyId, Buffer.alloc(32, 7)), identity, sealed)).toBeUndefined();
    expect(openDigest(master, encodeHeader(17, keyId, salt), identity, sealed)).toBeUndefined();
    expect(openDigest(master, header, { dataspace: 'logs', segmentId: 'seg-2' }, sealed)).toBeUndefined();
    expect(openDigest(master, header, { dataspace: 'logs2', segmentId: 'seg-1' }, sealed)).toBeUndefined();
    expect(openDigest(master, header, identity, sealed.slice(0, 60))).toBeUndefined();
    expect(openDigest(master, header, identity, `${sealed}AAAA`)).toBeUndefined();
    expect(openDigest(master, header, identity, '')).toBeUndefined();
  });

  it('any one bit flipped in the sealed bytes (digest or tag) does not open', () => {
    const bytes = Buffer.from(sealDigest(master, header, identity, sha('hello')), 'base64');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length * 8 - 1 }), (bit) => {
        const flipped = Buffer.from(bytes);
        flipped[bit >> 3] = (flipped[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        expect(openDigest(master, header, identity, flipped.toString('base64'))).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it('round-trips every digest, and the sealed form shows nothing of it', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (d) => {
        const hex = Buffer.from(d).toString('hex');
        const sealed = sealDigest(master, header, identity, hex);
        expect(openDigest(master, header, identity, sealed)).toBe(hex);
        expect(Buffer.from(sealed, 'base64').subarray(0, 32).equals(Buffer.from(d))).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses to seal what is not a hex SHA-256', () => {
    expect(() => sealDigest(master, header, identity, 'abcd')).toThrow(/not a hex SHA-256: abcd/);
  });
});

async function meterOver(pieces: Buffer[], meter: VerifyingMeter): Promise<VerifyingMeter> {
  await pipeline(Readable.from(pieces), meter, new Writable({ write: (_c, _e, done) => done() }));
  return meter;
}

describe('VerifyingMeter with a digest known without hashing', () => {
  const bytes = [Buffer.from('hello, '), Buffer.from('bucket')];

  it('answers the known digest and counts the bytes: it does not hash them', async () => {
    const known = 'ab'.repeat(32);
    const meter = await meterOver(bytes, new VerifyingMeter({ size: 13, what: 'x', knownSha256: () => known }));
    expect(meter.sha256).toBe(known);
    expect(meter.bytes).toBe(13);
  });

  it('hashes when nothing is known, and asks once, before the first byte', async () => {
    let asked = 0;
    const meter = await meterOver(bytes, new VerifyingMeter({ size: 13, what: 'x', knownSha256: () => (asked++, undefined) }));
    expect(meter.sha256).toBe(sha('hello, bucket'));
    expect(asked).toBe(1);
  });

  it('asks at the end when no byte came (an empty segment)', async () => {
    const meter = await meterOver([], new VerifyingMeter({ size: 0, what: 'x', knownSha256: () => sha('') }));
    expect(meter.sha256).toBe(sha(''));
    const hashed = await meterOver([], new VerifyingMeter({ size: 0, what: 'x', knownSha256: () => undefined }));
    expect(hashed.sha256).toBe(sha(''));
  });

  it('still checks the size either way', async () => {
    await expect(meterOver(bytes, new VerifyingMeter({ size: 12, what: 'x', knownSha256: () => 'ab'.repeat(32) }))).rejects.toBeInstanceOf(IntegrityError);
    await expect(meterOver(bytes, new VerifyingMeter({ size: 14, what: 'x', knownSha256: () => 'ab'.repeat(32) }))).rejects.toBeInstanceOf(TruncatedError);
  });

  it('a digest to check alone is checked as before (plain objects): the right one passes, a wrong one is an IntegrityError', async () => {
    expect((await meterOver(bytes, new VerifyingMeter({ size: 13, what: 'x', sha256: sha('hello, bucket') }))).sha256).toBe(sha('hello, bucket'));
    await expect(meterOver(bytes, new VerifyingMeter({ size: 13, what: 'x', sha256: sha('other') }))).rejects.toBeInstanceOf(IntegrityError);
  });

  it('a known digest cannot be adopted once bytes were hashed', async () => {
    class Late extends Sha256Meter {
      adopt(d: string): void {
        this.adoptDigest(d);
      }
    }
    const late = new Late();
    late.adopt('ab'.repeat(32)); // before the first byte: fine
    const meter = new Late();
    meter.write(Buffer.from('x'));
    await new Promise((r) => setImmediate(r));
    expect(() => meter.adopt('ab'.repeat(32))).toThrow(/before the first byte/);
  });

  it('refuses a digest to check together with a known one', () => {
    expect(() => new VerifyingMeter({ size: 1, what: 'x', sha256: sha('a'), knownSha256: () => undefined })).toThrow(/exclude each other/);
  });
});
