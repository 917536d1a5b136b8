/**
 * What an upload records in the object's user metadata, and its reader. Both directions live here.
 *   bks-format  "v1" (client-side encrypted, format v1) or "plain" (encryption off)
 *   bks-size    plaintext size in bytes
 *   bks-sha256  plaintext SHA-256, only for "plain" (for encrypted objects the chunk tags are the check, and a
 *               digest would let a bucket reader confirm a guess of the content)
 *   bks-header  base64 of the 48-byte v1 header (public anyway: key id and salt), so a ranged read costs a HEAD
 *               plus one ranged GET of the chunk span
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
}

const schema = z.object({
  'bks-format': z.enum(['v1', 'plain']),
  'bks-size': z.string().regex(/^\d+$/),
  'bks-sha256': z.string().regex(/^[0-9a-f]{64}$/).optional(),
  'bks-header': z.string().regex(/^[A-Za-z0-9+/]{64}$/).optional(),
});

export function encodeObjectMetadata(m: SegmentObjectMetadata): Record<string, string> {
  return {
    'bks-format': m.format,
    'bks-size': String(m.plaintextSize),
    ...(m.sha256 !== undefined ? { 'bks-sha256': m.sha256 } : {}),
    ...(m.header !== undefined ? { 'bks-header': m.header.toString('base64') } : {}),
  };
}

/** Reads the metadata of a stored segment object; undefined when it carries none of ours (written by hand). */
export function decodeObjectMetadata(metadata: Readonly<Record<string, string>>): SegmentObjectMetadata | undefined {
  const lower = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k.toLowerCase(), v]));
  if (lower['bks-format'] === undefined) return undefined;
  const parsed = schema.safeParse(lower);
  if (!parsed.success) throw new MalformedHeaderError(`object metadata is not valid bucket-storage metadata (${parsed.error.issues[0]?.path.join('.')})`);
  const m = parsed.data;
  return {
    format: m['bks-format'],
    plaintextSize: Number(m['bks-size']),
    sha256: m['bks-sha256'],
    header: m['bks-header'] !== undefined ? Buffer.from(m['bks-header'], 'base64') : undefined,
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
