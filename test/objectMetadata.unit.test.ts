/**
 * The reader of a segment object's metadata (src/core/objectMetadata.ts) on values a writer of this project never
 * produces: junk around a hex digest, a size or a header, an unknown format, a plain object without digest or a
 * v1 object without header, and a bks-mac on a plain object. Written for the survivors of the mutation run
 * `upload` (notes: mut-uploadcore.md).
 */
import { describe, expect, it } from 'vitest';
import { MalformedHeaderError } from '../src/core/errors.ts';
import { decodeObjectMetadata, expectedStoredSize } from '../src/core/objectMetadata.ts';
import { thrown } from './support/thrown.ts';

const HEX64 = '0123456789abcdef'.repeat(4);
const HEADER64 = 'AB+/'.repeat(16);
const plain = (extra: Record<string, string> = {}) => ({ 'bks-format': 'plain', 'bks-size': '12', 'bks-sha256': HEX64, ...extra });
const v1 = (extra: Record<string, string> = {}) => ({ 'bks-format': 'v1', 'bks-size': '12', 'bks-header': HEADER64, ...extra });

const refusal = (metadata: Record<string, string>, where?: string) => thrown(() => decodeObjectMetadata(metadata, where), MalformedHeaderError).message;

describe('decodeObjectMetadata', () => {
  it('reads well-formed plain and v1 metadata', () => {
    expect(decodeObjectMetadata(plain())).toEqual({ format: 'plain', plaintextSize: 12, sha256: HEX64, header: undefined, mac: undefined });
    expect(decodeObjectMetadata(v1({ 'bks-mac': HEX64 }))).toEqual({ format: 'v1', plaintextSize: 12, sha256: undefined, header: Buffer.from(HEADER64, 'base64'), mac: HEX64 });
    expect(decodeObjectMetadata(plain({ 'bks-size': '1234567890123456' }))?.plaintextSize).toBe(1234567890123456);
  });

  it('refuses a hex digest or MAC with anything before or after its 64 digits', () => {
    for (const bad of [`x${HEX64}`, `${HEX64}x`, `${HEX64}0`]) {
      expect(refusal(plain({ 'bks-sha256': bad }), 's3://b/k')).toBe('s3://b/k: metadata is not valid bucket-storage metadata (bks-sha256)');
      expect(refusal(v1({ 'bks-mac': bad }), 's3://b/k')).toBe('s3://b/k: metadata is not valid bucket-storage metadata (bks-mac)');
    }
  });

  it('refuses a size with junk around its digits', () => {
    for (const bad of ['x12', '12x', '12345678901234567'])
      expect(refusal(plain({ 'bks-size': bad }), 's3://b/k')).toBe('s3://b/k: metadata is not valid bucket-storage metadata (bks-size)');
  });

  it('refuses a header that is not exactly 64 base64 characters', () => {
    for (const bad of [`A${HEADER64}`, `${HEADER64}A`]) expect(refusal(v1({ 'bks-header': bad }), 's3://b/k')).toBe('s3://b/k: metadata is not valid bucket-storage metadata (bks-header)');
  });

  it('refuses an unknown format, naming the object as "object" by default', () => {
    expect(refusal({ 'bks-format': 'v2', 'bks-size': '1' })).toBe('object: metadata is not valid bucket-storage metadata (bks-format)');
  });

  it('refuses a plain object without bks-sha256, naming the object as "object" by default', () => {
    expect(refusal({ 'bks-format': 'plain', 'bks-size': '1' })).toBe(
      'object is a plain (unencrypted) object without bks-sha256: nothing can check its bytes and the upload function never writes one, so it is refused (substituted or written by hand?)',
    );
    expect(refusal({ 'bks-format': 'plain', 'bks-size': '1' }, 's3://b/k')).toMatch(/^s3:\/\/b\/k is a plain \(unencrypted\) object without bks-sha256: /);
  });

  it('keeps bks-mac only for v1 objects', () => {
    expect(decodeObjectMetadata(plain({ 'bks-mac': HEX64 }))?.mac).toBeUndefined();
    expect(decodeObjectMetadata(v1({ 'bks-mac': HEX64 }))?.mac).toBe(HEX64);
  });

  it('keeps bks-digest (64 base64 characters) only for v1 objects, and refuses one of another length', () => {
    expect(decodeObjectMetadata(plain({ 'bks-digest': HEADER64 }))?.digest).toBeUndefined();
    expect(decodeObjectMetadata(v1({ 'bks-digest': HEADER64 }))?.digest).toBe(HEADER64);
    expect(decodeObjectMetadata(v1())?.digest).toBeUndefined();
    for (const bad of [`A${HEADER64}`, HEADER64.slice(1), `${HEADER64.slice(1)}-`])
      expect(refusal(v1({ 'bks-digest': bad }), 's3://b/k')).toBe('s3://b/k: metadata is not valid bucket-storage metadata (bks-digest)');
  });
});

describe('expectedStoredSize', () => {
  it('refuses a v1 object without bks-header', () => {
    const err = thrown(() => expectedStoredSize({ format: 'v1', plaintextSize: 12 }, 's3://b/k'), MalformedHeaderError);
    expect(err.message).toBe('s3://b/k is a format v1 object without bks-header metadata: it was not written by the upload function');
  });
});
