/**
 * What an upload records in the object's user metadata, and its reader. Both directions live here.
 *   bks-format  "v1" (client-side encrypted, format v1) or "plain" (encryption off)
 *   bks-size    plaintext size in bytes
 *   bks-sha256  plaintext SHA-256, only for "plain", where it is required (for encrypted objects the chunk tags
 *               are the check, and a digest would let a bucket reader confirm a guess of the content)
 *   bks-header  base64 of the 48-byte v1 header (public anyway: key id and salt), so a ranged read costs a HEAD
 *               plus one ranged GET of the chunk span
 *   bks-mac     v1 only, when the announcement gave a sha256: a keyed MAC of the plaintext SHA-256 (digestMac.ts),
 *               so "already stored?" compares content without storing a digest a reader could check guesses with
 *   bks-digest  v1 only, when the announcement gave a sha256: the plaintext SHA-256 sealed under a key of this
 *               object (sealedDigest.ts), so a whole restore answers it without hashing again
 */
import * as z from 'zod';
import { MalformedHeaderError } from './errors.ts';
import { ciphertextSize, parseHeader } from './format/index.ts';

export type StoredFormat = 'v1' | 'plain';

export interface SegmentObjectMetadata {
  readonly format: StoredFormat;
  readonly plaintextSize: number;
  readonly sha256?: string | undefined;
  readonly header?: Buffer | undefined;
  /** Hex HMAC-SHA256 of the plaintext SHA-256 (see digestMac.ts); v1 objects written with an announced sha256. */
  readonly mac?: string | undefined;
  /** Base64 of the sealed plaintext SHA-256 (see sealedDigest.ts); v1 objects written with an announced sha256. */
  readonly digest?: string | undefined;
}

const HEX_256 = /^[0-9a-f]{64}$/;
const schema = z.object({
  'bks-format': z.enum(['v1', 'plain']),
  'bks-size': z.string().regex(/^\d{1,16}$/),
  'bks-sha256': z.string().regex(HEX_256).optional(),
  'bks-header': z.string().regex(/^[A-Za-z0-9+/]{64}$/).optional(),
  'bks-mac': z.string().regex(HEX_256).optional(),
  'bks-digest': z.string().regex(/^[A-Za-z0-9+/]{64}$/).optional(),
});

export function encodeObjectMetadata(m: SegmentObjectMetadata): Record<string, string> {
  return {
    'bks-format': m.format,
    'bks-size': String(m.plaintextSize),
    ...(m.sha256 !== undefined ? { 'bks-sha256': m.sha256 } : {}),
    ...(m.header !== undefined ? { 'bks-header': m.header.toString('base64') } : {}),
    ...(m.mac !== undefined ? { 'bks-mac': m.mac } : {}),
    ...(m.digest !== undefined ? { 'bks-digest': m.digest } : {}),
  };
}

/**
 * Reads the metadata of a stored segment object; undefined when it carries none of ours (written by hand).
 * A `plain` object without bks-sha256 is refused (MalformedHeaderError): nothing could check its bytes, and the
 * upload function never writes one. `where` names the object in messages.
 */
export function decodeObjectMetadata(metadata: Readonly<Record<string, string>>, where = 'object'): SegmentObjectMetadata | undefined {
  const lower = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k.toLowerCase(), v]));
  if (lower['bks-format'] === undefined) return undefined;
  const parsed = schema.safeParse(lower);
  if (!parsed.success) throw new MalformedHeaderError(`${where}: metadata is not valid bucket-storage metadata (${parsed.error.issues[0]?.path.join('.')})`);
  const m = parsed.data;
  if (m['bks-format'] === 'plain' && m['bks-sha256'] === undefined) {
    throw new MalformedHeaderError(`${where} is a plain (unencrypted) object without bks-sha256: nothing can check its bytes and the upload function never writes one, so it is refused (substituted or written by hand?)`);
  }
  return {
    format: m['bks-format'],
    plaintextSize: Number(m['bks-size']),
    sha256: m['bks-sha256'],
    header: m['bks-header'] !== undefined ? Buffer.from(m['bks-header'], 'base64') : undefined,
    mac: m['bks-format'] === 'v1' ? m['bks-mac'] : undefined,
    digest: m['bks-format'] === 'v1' ? m['bks-digest'] : undefined,
  };
}

/**
 * The size a stored object with this metadata must have (`where` names it in errors). A format v1 object
 * without bks-header was not written by the upload function: MalformedHeaderError.
 */
export function expectedStoredSize(meta: SegmentObjectMetadata, where: string): number {
  if (meta.format === 'plain') return meta.plaintextSize;
  if (meta.header === undefined) throw new MalformedHeaderError(`${where} is a format v1 object without bks-header metadata: it was not written by the upload function`);
  return ciphertextSize(meta.plaintextSize, parseHeader(meta.header).chunkLog2);
}
