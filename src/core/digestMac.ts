/**
 * bks-mac: a keyed MAC of a segment's plaintext SHA-256, stored in the metadata of format v1 objects so that
 * "already stored?" can compare an announced sha256 with the stored content without storing the digest itself
 * (a plaintext digest would let anyone who reads the bucket confirm a guess of the content).
 *
 *   macKey = HKDF-SHA256(ikm = master, salt = header salt, info = "bucket-storage/v1 sha256-mac " || dataspace || "/" || segmentId, 32 bytes)
 *   mac    = HMAC-SHA256(macKey, the 32 bytes of SHA-256(plaintext)), stored as 64 lowercase hex digits
 *
 * The key is derived like the object key (same master, same per-object salt, same identity) but with another
 * info string, so it is independent of the encryption key; without the master it reveals nothing.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { objectSubkey } from './format/index.ts';
import type { KeyEntry } from './keyRing.ts';
import type { SegmentIdentity } from './objectKeys.ts';

/** The hex MAC of the hex SHA-256 `sha256` for the object with header salt `salt`, under `key`'s master. */
export function digestMac(key: Pick<KeyEntry, 'master'>, salt: Buffer, identity: SegmentIdentity, sha256: string): string {
  const macKey = objectSubkey(key.master, salt, identity, 'sha256-mac');
  return createHmac('sha256', macKey).update(Buffer.from(sha256, 'hex')).digest('hex');
}

/** Constant-time comparison of two hex MACs. */
export function macsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}
