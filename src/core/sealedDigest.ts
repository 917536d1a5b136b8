/**
 * bks-digest: a format v1 object's plaintext SHA-256, sealed under a key of that object alone, stored in its
 * metadata when the announcement gave a sha256. A whole restore then answers that digest without hashing the
 * plaintext again: every chunk's tag proves the bytes are the ones sealed, and the upload checked, before it
 * completed, that the bytes it sealed have this digest. Hashing was a quarter of a restore's CPU.
 *
 *   sealKey    = HKDF-SHA256(ikm = master, salt = header salt, info = "bucket-storage/v1 sha256-seal " || dataspace || "/" || segmentId, 32 bytes)
 *   bks-digest = base64(AES-256-GCM(sealKey, nonce = 12 zero bytes, plaintext = the 32 bytes of SHA-256(plaintext), aad = header))
 *              = 32 bytes of ciphertext then the 16-byte tag: 64 base64 characters
 *
 * The key is derived like the object key (docs/FORMAT.md) with another info string, so it is independent of it;
 * it seals exactly one value (the salt is random per object), so the constant nonce is never reused under it.
 * Without the master it reveals nothing, unlike a plain digest, which would let anyone who reads the bucket
 * confirm a guess of a segment's content.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { objectSubkey, TAG_SIZE, type Header } from './format/index.ts';
import type { SegmentIdentity } from './objectKeys.ts';

const NONCE = Buffer.alloc(12);
const DIGEST_SIZE = 32;

function sealKeyFor(master: Buffer, header: Header, identity: SegmentIdentity): Buffer {
  return objectSubkey(master, header.salt, identity, 'sha256-seal');
}

/** bks-digest of the hex SHA-256 `sha256` for the object with `header`, under `master`. */
export function sealDigest(master: Buffer, header: Header, identity: SegmentIdentity, sha256: string): string {
  const digest = Buffer.from(sha256, 'hex');
  if (digest.length !== DIGEST_SIZE) throw new RangeError(`sealDigest: not a hex SHA-256: ${sha256}`);
  const cipher = createCipheriv('aes-256-gcm', sealKeyFor(master, header, identity), NONCE);
  cipher.setAAD(header.raw);
  const sealed = Buffer.concat([cipher.update(digest), cipher.final(), cipher.getAuthTag()]);
  return sealed.toString('base64');
}

/**
 * The hex SHA-256 that `sealed` (a bks-digest) holds for the object with `header`, or undefined when it does not
 * open there: written for another object or segment, under another key, or altered. A caller then hashes.
 */
export function openDigest(master: Buffer, header: Header, identity: SegmentIdentity, sealed: string): string | undefined {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length !== DIGEST_SIZE + TAG_SIZE) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', sealKeyFor(master, header, identity), NONCE);
  decipher.setAAD(header.raw);
  decipher.setAuthTag(bytes.subarray(DIGEST_SIZE));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(0, DIGEST_SIZE)), decipher.final()]).toString('hex');
  } catch {
    return undefined;
  }
}
