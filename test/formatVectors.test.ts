/**
 * A three-chunk golden vector of format v1 (chunk log2 16, a plaintext of 2 × 65536 + 7 bytes): it pins the
 * chunk nonces (index, last-chunk flag) that one-chunk vectors cannot, and it is cross-checked on every run
 * against an independent implementation of DESIGN.md in Python (test/support/format_v1_reference.py:
 * hashlib's scrypt and HMAC, the `cryptography` package's HKDF and AES-GCM).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TruncatedError } from '../src/core/errors.ts';
import { KeyRing } from '../src/core/keyRing.ts';
import { Secret } from '../src/core/secret.ts';
import { createDecryptStream, createEncryptStream, HEADER_SIZE, TAG_SIZE } from '../src/core/format/index.ts';

const SECRET = 'golden-secret';
const SALT = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const IDENTITY = { dataspace: 'logs', segmentId: 'seg-1' };
const CHUNK_LOG2 = 16;
const CHUNK = 2 ** CHUNK_LOG2;
/** 2 × 65536 + 7 bytes: two full chunks and a last chunk of 7 bytes. Byte i = (131 i + 17) mod 256. */
const PLAINTEXT = Buffer.from(Array.from({ length: 2 * CHUNK + 7 }, (_, i) => (i * 131 + 17) % 256));

// The vector: computed by the codec, and produced identically by the Python implementation (see below).
const GOLDEN = {
  header: '424b533101011000f06edb2bf9cce745000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  sha256: '94055b0ce7adfab4853bacce9a014e584e24e39f3cd32ef8834624382fd9ac02',
  tags: ['886957ab8e5c6a2171e3b3ecc0fb1443', 'd3007dffdc43f8ebba02b003111e7a76', '844d0fada94d57e7bb48e14e77568f08'],
};

const ring = () => KeyRing.fromSecrets(new Secret(SECRET), [], async (s) => s.reveal());

async function encryptGolden(): Promise<Buffer> {
  const r = await ring();
  const out: Buffer[] = [];
  // Uneven input pieces: chunking must not depend on how the plaintext arrives.
  const pieces = [PLAINTEXT.subarray(0, 1000), PLAINTEXT.subarray(1000, 70_000), PLAINTEXT.subarray(70_000)];
  for await (const c of Readable.from(pieces).pipe(createEncryptStream({ key: r.current!, identity: IDENTITY, chunkLog2: CHUNK_LOG2, salt: SALT }))) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** The tag of chunk i of an object of full chunks then a last one. */
function tagOf(object: Buffer, i: number): string {
  const end = Math.min(object.length, HEADER_SIZE + (i + 1) * (CHUNK + TAG_SIZE));
  return object.subarray(end - TAG_SIZE, end).toString('hex');
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('format v1 golden vector, three chunks', () => {
  it('the codec encrypts exactly the pinned bytes', async () => {
    const object = await encryptGolden();
    expect(object.length).toBe(HEADER_SIZE + 3 * TAG_SIZE + PLAINTEXT.length);
    expect(object.subarray(0, HEADER_SIZE).toString('hex')).toBe(GOLDEN.header);
    expect([0, 1, 2].map((i) => tagOf(object, i))).toEqual(GOLDEN.tags);
    expect(sha256(object)).toBe(GOLDEN.sha256);
  });

  it('decrypts back to the plaintext; without its last chunk it is refused as truncated (chunk 1 is sealed as not last)', async () => {
    const object = await encryptGolden();
    const r = await ring();
    const out: Buffer[] = [];
    for await (const c of Readable.from([object]).pipe(createDecryptStream({ keyRing: r, identity: IDENTITY, plaintextSize: PLAINTEXT.length }))) out.push(c as Buffer);
    expect(Buffer.concat(out).equals(PLAINTEXT)).toBe(true);
    // Dropping the last chunk leaves chunk 1, sealed with the flag "not last", at the end: never taken as whole.
    const dropped = object.subarray(0, HEADER_SIZE + 2 * (CHUNK + TAG_SIZE));
    const err = await (async () => {
      for await (const c of Readable.from([dropped]).pipe(createDecryptStream({ keyRing: r, identity: IDENTITY }))) void c;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedError);
  });

  it('an independent Python implementation of DESIGN.md produces the same object', async () => {
    const input = JSON.stringify({ secret: SECRET, saltHex: SALT.toString('hex'), ...IDENTITY, chunkLog2: CHUNK_LOG2, plaintextB64: PLAINTEXT.toString('base64') });
    const run = spawnSync('python3', ['test/support/format_v1_reference.py'], { input, encoding: 'utf8', maxBuffer: 8 << 20, timeout: 60_000 });
    if (run.error !== undefined && 'code' in run.error && run.error.code === 'ENOENT') {
      throw new Error('python3 is not installed: this test cross-checks the format with a Python implementation. Install Python 3 and its cryptography package (apt-get install python3 python3-cryptography, or pip install cryptography)');
    }
    if (run.status !== 0) throw new Error(`test/support/format_v1_reference.py failed (exit ${run.status}): ${run.stderr.trim()}`);
    const reference = JSON.parse(run.stdout) as { keyIdHex: string; chunks: number; objectB64: string };
    const pythonObject = Buffer.from(reference.objectB64, 'base64');
    expect(reference.chunks).toBe(3);
    expect(reference.keyIdHex).toBe((await ring()).current!.keyIdHex);
    expect(sha256(pythonObject)).toBe(GOLDEN.sha256);
    expect(pythonObject.equals(await encryptGolden())).toBe(true);
  });
});
