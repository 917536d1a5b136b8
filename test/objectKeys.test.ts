import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidIdentifierError } from '../src/core/errors.ts';
import {
  deletionMarksPrefix,
  formatDeletionMarkKey,
  formatSegmentKey,
  markDueTime,
  MAX_IDENTIFIER_LENGTH,
  normalisePrefix,
  parseDeletionMarkKey,
  parseSegmentKey,
  partitionHash,
  prefixOfRegistryKey,
  registryKey,
  validateIdentifier,
} from '../src/core/objectKeys.ts';

// Golden examples: written down once; a change here is a change of every stored object's name.
const GOLDEN: [prefix: string, dataspace: string, segmentId: string, key: string][] = [
  ['', 'd', 's', 'ef26/bks/d/s'],
  ['', 'logs', 'seg-0001', 'edb3/bks/logs/seg-0001'],
  ['', 'humio-repo', '7Yh_3.k-Q', '5b2e/bks/humio-repo/7Yh_3.k-Q'],
  ['cluster-a/', 'd', 's', 'cluster-a/ef26/bks/d/s'],
  ['cluster-a/', 'logs', 'seg-0001', 'cluster-a/edb3/bks/logs/seg-0001'],
  ['a/b/', 'humio-repo', '7Yh_3.k-Q', 'a/b/5b2e/bks/humio-repo/7Yh_3.k-Q'],
];

const idChar = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-'.split(''));
const alnum = fc.constantFrom(...'abcXYZ0189'.split(''));
const identifier = fc
  .tuple(alnum, fc.array(idChar, { maxLength: MAX_IDENTIFIER_LENGTH - 1 }))
  .map(([first, rest]) => first + rest.join(''))
  .filter((s) => !s.includes('..'));
const identity = fc.record({ dataspace: identifier, segmentId: identifier });
const prefixComponent = fc.array(idChar, { minLength: 1, maxLength: 12 }).map((c) => c.join('')).filter((c) => c !== '.' && c !== '..');
const prefix = fc.oneof(fc.constant(''), fc.array(prefixComponent, { minLength: 1, maxLength: 3 }).map((p) => `${p.join('/')}/`));

describe('object keys', () => {
  it.each(GOLDEN)('golden: prefix %j, %s/%s → %s', (p, dataspace, segmentId, key) => {
    expect(formatSegmentKey(p, { dataspace, segmentId })).toBe(key);
    expect(parseSegmentKey(p, key)).toEqual({ dataspace, segmentId });
  });

  it('the hash component is the first 4 hex digits of SHA-256(dataspace/segmentId)', () => {
    expect(partitionHash({ dataspace: 'logs', segmentId: 'seg-0001' })).toBe('edb3');
  });

  it('prefixes are normalised: slashes trimmed, one trailing slash', () => {
    expect(normalisePrefix('')).toBe('');
    expect(normalisePrefix('/a/b/')).toBe('a/b/');
    expect(normalisePrefix('a')).toBe('a/');
    for (const bad of ['a//b', 'a/../b', 'a/./b', 'a b', 'é']) expect(() => normalisePrefix(bad)).toThrow(InvalidIdentifierError);
  });

  it('property: parse(format(x)) returns x for every valid identity and prefix', () => {
    fc.assert(fc.property(prefix, identity, (p, id) => {
      expect(parseSegmentKey(p, formatSegmentKey(p, id))).toEqual(id);
    }), { numRuns: 2000 });
  });

  it('property: keys spread over the hash partitions (no single hot prefix)', () => {
    const hashes = new Set<string>();
    fc.assert(fc.property(identity, (id) => void hashes.add(formatSegmentKey('', id).slice(0, 4))), { numRuns: 500 });
    expect(hashes.size).toBeGreaterThan(400);
  });

  it('property: the parser rejects random strings', () => {
    fc.assert(fc.property(prefix, fc.string({ maxLength: 200 }), (p, s) => {
      expect(parseSegmentKey(p, p + s)).toBeUndefined();
    }), { numRuns: 5000 });
  });

  it('property: keys under another prefix, or of another cluster sharing the bucket, are rejected', () => {
    fc.assert(
      fc.property(prefix, prefix, identity, (ours, theirs, id) => {
        fc.pre(ours !== theirs);
        // Another cluster's object (its prefix) is never ours, whichever prefix is a prefix of the other.
        expect(parseSegmentKey(ours, formatSegmentKey(theirs, id))).toBeUndefined();
      }),
      { numRuns: 3000 },
    );
  });

  it('property: a key with a wrong hash, marker or extra component is rejected', () => {
    fc.assert(
      fc.property(prefix, identity, fc.stringMatching(/^[0-9a-f]{4}$/), (p, id, hash) => {
        const key = formatSegmentKey(p, id);
        const rest = key.slice(p.length + 4);
        if (hash !== key.slice(p.length, p.length + 4)) expect(parseSegmentKey(p, p + hash + rest)).toBeUndefined();
        expect(parseSegmentKey(p, key.replace('/bks/', '/bkz/'))).toBeUndefined();
        expect(parseSegmentKey(p, `${key}/x`)).toBeUndefined();
        expect(parseSegmentKey(p, `x/${key}`)).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });

  it('the registry object never parses as a segment key', () => {
    for (const p of ['', 'cluster-a/']) expect(parseSegmentKey(p, registryKey(p))).toBeUndefined();
  });

  it('golden deletion mark keys: due second in fixed width, 16 hex id; parse(format(x)) = x', () => {
    const due = new Date('2026-11-28T04:00:00.000Z');
    expect(formatDeletionMarkKey('', due, '0123456789abcdef')).toBe('_bucket-storage/deletions/20261128T040000Z-0123456789abcdef.json');
    expect(formatDeletionMarkKey('cluster-a/', due, '0123456789abcdef')).toBe('cluster-a/_bucket-storage/deletions/20261128T040000Z-0123456789abcdef.json');
    expect(parseDeletionMarkKey('cluster-a/', 'cluster-a/_bucket-storage/deletions/20261128T040000Z-0123456789abcdef.json')).toEqual({ due, id: '0123456789abcdef' });
    expect(markDueTime(new Date('2026-11-25T04:00:00.999Z'), 72 * 3_600_000)).toEqual(due);
    for (const bad of ['20261128T040000Z-0123456789ABCDEF.json', '20261131T040000Z-0123456789abcdef.json', '20261128T040000Z-0123456789abcdef.json.tmp', '2026-11-28-0123456789abcdef.json']) {
      expect(parseDeletionMarkKey('', deletionMarksPrefix('') + bad)).toBeUndefined();
    }
    expect(() => formatDeletionMarkKey('', new Date(due.getTime() + 1), '0123456789abcdef')).toThrow(InvalidIdentifierError);
  });

  it('property: mark keys sort by due time, parse back, and never parse as segment keys (nor under another prefix)', () => {
    const id = fc.stringMatching(/^[0-9a-f]{16}$/);
    const second = fc.integer({ min: 0, max: 253_402_300_799 }).map((s) => new Date(s * 1000));
    fc.assert(
      fc.property(prefix, prefix, second, second, id, id, (p, other, a, b, idA, idB) => {
        const ka = formatDeletionMarkKey(p, a, idA);
        const kb = formatDeletionMarkKey(p, b, idB);
        expect(parseDeletionMarkKey(p, ka)).toEqual({ due: a, id: idA });
        if (a.getTime() < b.getTime()) expect(ka < kb).toBe(true);
        expect(parseSegmentKey(p, ka)).toBeUndefined();
        expect(parseSegmentKey('', ka)).toBeUndefined();
        if (other !== p) expect(parseDeletionMarkKey(other, ka)).toBeUndefined();
      }),
      { numRuns: 3000 },
    );
  });

  it('the prefix of a registry key is found back; other keys are not registry keys', () => {
    for (const p of ['', 'cluster-a/', 'a/b/']) expect(prefixOfRegistryKey(registryKey(p))).toBe(p);
    for (const k of ['registry.json', 'x_bucket-storage/registry.json/', 'a//_bucket-storage/registry.json', '_bucket-storage/deletions/registry.json']) expect(prefixOfRegistryKey(k)).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['a/b', /character "\/"/],
    ['a..b', /"\.\."/],
    ['..', /"\.\."/],
    ['.hidden', /does not start with a letter or digit/],
    ['-x', /does not start with a letter or digit/],
    ['tab\there', /control character U\+0009/],
    ['nul\u0000', /control character U\+0000/],
    ['é', /does not start/],
    ['aé', /character "é"/],
    ['x'.repeat(MAX_IDENTIFIER_LENGTH + 1), /at most 128/],
  ])('invalid identifier %j is refused naming the field', (value, message) => {
    for (const field of ['dataspace', 'segmentId'] as const) {
      const id = { dataspace: 'ok', segmentId: 'ok', [field]: value };
      let err: unknown;
      try {
        formatSegmentKey('', id);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidIdentifierError);
      expect((err as InvalidIdentifierError).field).toBe(field);
      expect((err as Error).message).toMatch(new RegExp(`^${field} `));
      expect((err as Error).message).toMatch(message);
    }
  });

  it('non-string identifiers are refused', () => {
    expect(() => validateIdentifier('dataspace', 42)).toThrow(/dataspace must be a string/);
  });
});
