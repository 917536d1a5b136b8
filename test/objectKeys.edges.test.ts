/**
 * Edges of the key-naming module that the mutation run (docs/MUTATION.md) found untested: the length bounds of
 * identifiers and prefixes, how a space and DEL are described, runs of slashes around a prefix, the field and
 * text of a prefix refusal, a key whose hash matches but whose identifier is invalid, and the state objects' keys.
 */
import { describe, expect, it } from 'vitest';
import { InvalidIdentifierError } from '../src/core/errors.ts';
import { identifierProblem, MAX_IDENTIFIER_LENGTH, MAX_PREFIX_LENGTH, normalisePrefix, parseSegmentKey, partitionHash, registryKey, storageSizeKey, validateIdentifier } from '../src/core/objectKeys.ts';

function refusal(f: () => unknown): InvalidIdentifierError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidIdentifierError);
    return err as InvalidIdentifierError;
  }
  throw new Error('accepted');
}

describe('object keys, edges', () => {
  it('an identifier of exactly the maximum length is valid, one more character is not', () => {
    expect(MAX_IDENTIFIER_LENGTH).toBe(128);
    expect(validateIdentifier('segmentId', 'a'.repeat(128))).toBe('a'.repeat(128));
    expect(refusal(() => validateIdentifier('segmentId', 'a'.repeat(129))).message).toBe('segmentId is 129 characters long; at most 128 are allowed');
  });

  it('a space is a character, DEL and U+001F are control characters', () => {
    expect(identifierProblem('a b')).toMatch(/contains a character " ";/);
    expect(identifierProblem('a\u007fb')).toMatch(/contains a control character U\+007f;/);
    expect(identifierProblem('a\u001fb')).toMatch(/contains a control character U\+001f;/);
  });

  it('runs of slashes around a prefix are trimmed', () => {
    expect(normalisePrefix('//a/b//')).toBe('a/b/');
    expect(normalisePrefix('///')).toBe('');
  });

  it('a prefix of exactly the maximum length is valid, one more character is not', () => {
    expect(MAX_PREFIX_LENGTH).toBe(512);
    expect(normalisePrefix('p'.repeat(512))).toBe(`${'p'.repeat(512)}/`);
    const err = refusal(() => normalisePrefix('p'.repeat(513)));
    expect(err.field).toBe('prefix');
    expect(err.message).toBe('the prefix is 513 characters long; at most 512 are allowed');
  });

  it('a bad prefix component is named, as the prefix field', () => {
    const err = refusal(() => normalisePrefix('ok/a b/ok'));
    expect(err.field).toBe('prefix');
    expect(err.message).toBe(`prefix component "a b" is not allowed; expected components of A-Z a-z 0-9 . _ - separated by single '/'`);
  });

  it('a key whose hash matches but whose identifier is invalid is not a segment key', () => {
    for (const identity of [{ dataspace: '-d', segmentId: 's' }, { dataspace: 'd', segmentId: 'a..b' }]) {
      const key = `c/${partitionHash(identity)}/bks/${identity.dataspace}/${identity.segmentId}`;
      expect(parseSegmentKey('c/', key)).toBeUndefined();
    }
  });

  it('the state objects live under the prefix, beside each other', () => {
    expect(registryKey('c/')).toBe('c/_bucket-storage/registry.json');
    expect(storageSizeKey('c/')).toBe('c/_bucket-storage/storage-size.json');
    expect(registryKey('')).toBe('_bucket-storage/registry.json');
  });
});
