import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { Sha256Meter } from '../src/core/sha256Meter.ts';
import { compositeCrc32, crc32Base64, crc32Update } from './support/crc32.ts';

/** Bitwise CRC-32 (IEEE), written independently of zlib. */
function crc32Reference(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('checksums', () => {
  it('Sha256Meter passes bytes through and reports their SHA-256 and count', async () => {
    const parts = [Buffer.from('hello '), Buffer.from('world'), Buffer.alloc(0)];
    const meter = new Sha256Meter();
    const seen: Buffer[] = [];
    await pipeline(Readable.from(parts), meter, new Writable({ write: (c: Buffer, _e, done) => (seen.push(c), done()) }));
    expect(Buffer.concat(seen).toString()).toBe('hello world');
    expect(meter.bytes).toBe(11);
    expect(meter.sha256).toBe(createHash('sha256').update('hello world').digest('hex'));
  });

  it('reading the digest before the end is an error', () => {
    expect(() => new Sha256Meter().sha256).toThrow(/before the stream ended/);
  });

  it('CRC32 and the composite multipart checksum agree with a reference implementation', () => {
    const a = Buffer.from('part one');
    const b = Buffer.from('part two, longer');
    expect(crc32Update(0, Buffer.concat([a, b]))).toBe(crc32Reference(Buffer.concat([a, b])));
    expect(crc32Update(crc32Update(0, a), b)).toBe(crc32Reference(Buffer.concat([a, b])));
    const parts = [crc32Base64(crc32Reference(a)), crc32Base64(crc32Reference(b))];
    const joined = Buffer.concat(parts.map((p) => Buffer.from(p, 'base64')));
    expect(compositeCrc32(parts)).toBe(`${crc32Base64(crc32Reference(joined))}-2`);
    expect(crc32Base64(0xcbf43926)).toBe(Buffer.from([0xcb, 0xf4, 0x39, 0x26]).toString('base64'));
    expect(crc32Reference(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});
