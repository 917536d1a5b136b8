/**
 * The typed errors as callers see them: each class's code (the `errorCode` dimension that failure metrics and
 * alarms group by, so a renamed code silently breaks dashboards), whether a redelivery may succeed, and the
 * messages composed from their fields. Written for the survivors of the mutation run `s3core` (docs/MUTATION.md).
 */
import { describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  ConfigError,
  DeletionInProgressError,
  DeletionMarkError,
  describeValue,
  IntegrityError,
  InvalidIdentifierError,
  InvalidMessageError,
  InvalidRangeError,
  LocationError,
  MalformedHeaderError,
  MAX_ECHOED_CHARACTERS,
  NoPendingDeletionError,
  PathOutsideRootError,
  PlainObjectRefusedError,
  ProtectedDestinationError,
  RegistryError,
  SegmentNotFoundError,
  ShipStateError,
  StorageError,
  TruncatedError,
  UnknownKeyIdError,
  type BucketStorageError,
} from '../src/core/errors.ts';

describe('typed errors', () => {
  it('each class has its stable code, its name, and says whether a redelivery may succeed', () => {
    const table: [BucketStorageError, string, boolean][] = [
      [new ConfigError('S3_STORAGE_BUCKET', 'm'), 'CONFIG_INVALID', false],
      [new InvalidIdentifierError('segmentId', 'm'), 'INVALID_IDENTIFIER', false],
      [new InvalidMessageError('size', 'm'), 'INVALID_MESSAGE', false],
      [new MalformedHeaderError('m'), 'MALFORMED_HEADER', false],
      [new UnknownKeyIdError('k1', []), 'UNKNOWN_KEY_ID', false],
      [new TruncatedError('m'), 'TRUNCATED', false],
      [new AuthenticationError(3), 'AUTHENTICATION_FAILED', false],
      [new IntegrityError('size', '1', '2', 'here'), 'INTEGRITY_MISMATCH', false],
      [new PathOutsideRootError('/x', 'S3_STORAGE_SOURCE_ROOT', '/data'), 'PATH_OUTSIDE_ROOT', false],
      [new ProtectedDestinationError('b', 'k', 'm'), 'DESTINATION_PROTECTED', false],
      [new PlainObjectRefusedError('b', 'k', 'm'), 'PLAIN_OBJECT_REFUSED', false],
      [new LocationError('s3://b/k', 'm'), 'LOCATION_UNAVAILABLE', false],
      [new SegmentNotFoundError('k', ['b']), 'SEGMENT_NOT_FOUND', false],
      [new StorageError('GetObject', 'b', 'k', 'm', { retryable: true }), 'STORAGE_FAILED', true],
      [new StorageError('GetObject', 'b', 'k', 'm', { retryable: false }), 'STORAGE_FAILED', false],
      [new InvalidRangeError('m'), 'RANGE_INVALID', false],
      [new RegistryError('m'), 'REGISTRY_INVALID', false],
      [new ShipStateError('/state', 'm'), 'SHIP_STATE_INVALID', false],
      [new DeletionMarkError('mark', 'm'), 'DELETION_MARK_INVALID', false],
      [new DeletionInProgressError('seg', 'mark'), 'DELETION_IN_PROGRESS', true],
      [new NoPendingDeletionError('seg', 'm'), 'NO_PENDING_DELETION', false],
    ];
    for (const [err, code, retryable] of table) {
      expect(err.code, err.name).toBe(code);
      expect(err.retryable, err.name).toBe(retryable);
      expect(err.name).toBe(err.constructor.name);
      expect(err).toBeInstanceOf(Error);
    }
  });

  it('messages composed from the fields name them and say what to do', () => {
    expect(new UnknownKeyIdError('k9', ['k1', 'k2']).message).toBe(
      'object is encrypted with key id k9, which is neither the current key nor one of S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS (known: k1, k2); add the key it was written with to S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS',
    );
    expect(new UnknownKeyIdError('k9', []).message).toContain('(known: none)');
    expect(new AuthenticationError(7).message).toBe(
      'authentication failed at chunk 7: the object was modified, truncated, reordered, copied from another segment, or encrypted with another key; no byte of this chunk was released',
    );
    expect(new IntegrityError('sha256', 'aa', 'bb', 'restore of k').message).toBe('restore of k: sha256 mismatch, expected aa, got bb');
    expect(new PathOutsideRootError('/etc/passwd', 'S3_STORAGE_RESTORE_ROOT', '/restore').message).toBe('"/etc/passwd" resolves outside S3_STORAGE_RESTORE_ROOT (/restore); use a path inside it');
    expect(new PathOutsideRootError('/x', 'S3_STORAGE_RESTORE_ROOT', undefined).message).toBe('"/x": file:// locations are refused because S3_STORAGE_RESTORE_ROOT is not set');
    expect(new SegmentNotFoundError('logs/k', ['one', 'two']).message).toBe('segment object logs/k not found in any bucket searched: one, two');
    expect(new DeletionInProgressError('ds/seg', 'm-1').message).toMatch(/^the deletion of segment ds\/seg is being carried out now \(mark m-1 was claimed by cleanup\); it can no longer be cancelled\./);
    const cause = new Error('root cause');
    expect(new TruncatedError('short', { cause, chunkIndex: 4 })).toMatchObject({ chunkIndex: 4, cause });
    expect(new TruncatedError('short').chunkIndex).toBeUndefined();
  });

  it('an echoed value is quoted whole up to the limit, cut beyond it with its real length', () => {
    const limit = 'x'.repeat(MAX_ECHOED_CHARACTERS);
    expect(describeValue(limit)).toBe(JSON.stringify(limit));
    expect(describeValue(`${limit}y`)).toBe(`${JSON.stringify(limit)}… (${MAX_ECHOED_CHARACTERS + 1} characters)`);
    expect(describeValue('a\nb', 2)).toBe('"a\\n"… (3 characters)');
    expect(describeValue('ab', 2)).toBe('"ab"');
  });
});
