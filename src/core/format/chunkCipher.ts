/**
 * One object's chunks, sealed and opened (docs/FORMAT.md): AES-256-GCM under a key derived for this object and
 * segment name, a nonce that binds each chunk to its position and to being last, and the header as
 * associated data. The writer seals with it, the reader opens with it: both sides of the format in one place.
 *
 *   objectKey = HKDF-SHA256(ikm = master, salt = header salt, info = "bucket-storage/v1 segment " + dataspace + "/" + segmentId)
 *   nonce_i   = 7 zero bytes | uint32 BE i | 1 for the last chunk, else 0
 *   chunk i   = AES-256-GCM(objectKey, nonce_i, plaintext_i, aad = header) = ciphertext_i | tag_i (16 bytes)
 */
import { createCipheriv, createDecipheriv, hkdfSync, type DecipherGCM } from 'node:crypto';
import type { SegmentIdentity } from '../objectKeys.ts';
import type { Header } from './header.ts';

export const TAG_SIZE = 16;
const NONCE_SIZE = 12;
const OBJECT_KEY_SIZE = 32;
/** Bytes per cipher/decipher update when sealing into a buffer or opening piece by piece: outputs this small
 *  come from memory malloc reuses, while 1 MiB outputs cost ~0.7 s/GiB of system time in page faults
 *  (measured: bench/codec.bench.ts). */
export const CIPHER_PIECE = 16 * 1024;

/**
 * A 32-byte key of one object for one purpose: HKDF-SHA256(ikm = master, salt = header salt,
 * info = "bucket-storage/v1 <purpose> " + dataspace + "/" + segmentId). The chunks' key ('segment'), bks-mac's
 * ('sha256-mac', digestMac.ts) and bks-digest's ('sha256-seal', sealedDigest.ts) differ only by purpose, so each
 * is independent of the others; a new salt, or another segment name, gives other keys.
 */
export function objectSubkey(master: Buffer, salt: Buffer, identity: SegmentIdentity, purpose: 'segment' | 'sha256-mac' | 'sha256-seal'): Buffer {
  const info = Buffer.from(`bucket-storage/v1 ${purpose} ${identity.dataspace}/${identity.segmentId}`, 'utf8');
  return Buffer.from(hkdfSync('sha256', master, salt, info, OBJECT_KEY_SIZE));
}

/** The key of one object's chunks. */
export function objectKeyFor(master: Buffer, salt: Buffer, identity: SegmentIdentity): Buffer {
  return objectSubkey(master, salt, identity, 'segment');
}

/** The nonce of chunk `index`: a chunk moved, or a middle chunk standing last, no longer verifies. */
export function nonceFor(index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(NONCE_SIZE);
  nonce.writeUInt32BE(index, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/** AES-256-GCM's key, nonce and associated data for one chunk. */
export interface GcmParams {
  readonly key: Buffer;
  readonly nonce: Buffer;
  readonly aad: Buffer;
}

export class ChunkCipher {
  readonly #objectKey: Buffer;
  readonly #aad: Buffer;

  constructor(master: Buffer, header: Header, identity: SegmentIdentity) {
    this.#objectKey = objectKeyFor(master, header.salt, identity);
    this.#aad = header.raw;
  }

  /** Chunk `index` of `plain`, as stored: its ciphertext, then its tag. */
  seal(index: number, last: boolean, plain: Buffer): [ciphertext: Buffer, tag: Buffer] {
    const cipher = createCipheriv('aes-256-gcm', this.#objectKey, nonceFor(index, last));
    cipher.setAAD(this.#aad);
    const ciphertext = cipher.update(plain);
    cipher.final();
    return [ciphertext, cipher.getAuthTag()];
  }

  /**
   * Chunk `index` of `plain` sealed straight into `out` at `offset` (ciphertext, then tag): `plain.length` +
   * TAG_SIZE bytes, returned. The same bytes as `seal`, into a buffer the caller owns (a part of an upload),
   * so no chunk-sized buffer is allocated per chunk (allocations of that size are fresh pages the kernel
   * must fault in: more CPU than the copy of each piece).
   */
  sealInto(index: number, last: boolean, plain: Buffer, out: Buffer, offset: number): number {
    const cipher = createCipheriv('aes-256-gcm', this.#objectKey, nonceFor(index, last));
    cipher.setAAD(this.#aad);
    let at = offset;
    for (let from = 0; from < plain.length; from += CIPHER_PIECE) at += cipher.update(plain.subarray(from, from + CIPHER_PIECE)).copy(out, at);
    at += cipher.final().copy(out, at);
    at += cipher.getAuthTag().copy(out, at);
    return at - offset;
  }

  /** A decipher of chunk `index` (as the last one or not), fed piece by piece by chunkReader.ts. */
  decipherFor(index: number, last: boolean): DecipherGCM {
    const decipher = createDecipheriv('aes-256-gcm', this.#objectKey, nonceFor(index, last));
    decipher.setAAD(this.#aad);
    return decipher;
  }

  /** The cipher's inputs for chunk `index` (as the last one or not), for a thread that seals or opens it (gcmThreads.ts). */
  params(index: number, last: boolean): GcmParams {
    return { key: this.#objectKey, nonce: nonceFor(index, last), aad: this.#aad };
  }

  /** The plaintext of stored chunk `index` (ciphertext and tag) if its tag verifies as `last` or not, else undefined. */
  open(index: number, last: boolean, sealed: Buffer): Buffer | undefined {
    if (sealed.length < TAG_SIZE) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', this.#objectKey, nonceFor(index, last));
    decipher.setAAD(this.#aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    try {
      const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
      decipher.final();
      return plain;
    } catch {
      return undefined; // the tag did not verify: nothing of this chunk may be used
    }
  }
}
