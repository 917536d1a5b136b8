/**
 * Every failure a caller must tell apart has its own class. All derive from BucketStorageError, carry the
 * data that names what failed (field, bucket, key, chunk), keep `cause`, and say how to fix it.
 * `retryable` tells the batch handlers whether a redelivery may succeed (throttling, network) or not
 * (bad input, tampered object): both fail the record, but logs and metrics differ.
 */
/** Longest rendering of an input value inside a message (a 20 MB identifier must not become a 20 MB message). */
export const MAX_ECHOED_CHARACTERS = 160;

/**
 * `value` as a message shows it: JSON-quoted (control characters escaped), cut to `max` characters with its
 * real length named, so a hostile input never makes a huge or multi-line message.
 */
export function describeValue(value: string, max = MAX_ECHOED_CHARACTERS): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}

export abstract class BucketStorageError extends Error {
  abstract readonly code: string;
  readonly retryable: boolean = false;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration variable is missing or has a bad value. */
export class ConfigError extends BucketStorageError {
  readonly code = 'CONFIG_INVALID';
  constructor(
    readonly variable: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A dataspace, segment id, prefix or object key is not acceptable. */
export class InvalidIdentifierError extends BucketStorageError {
  readonly code = 'INVALID_IDENTIFIER';
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A queue message or invocation event does not match its schema. */
export class InvalidMessageError extends BucketStorageError {
  readonly code = 'INVALID_MESSAGE';
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Base of everything the format v1 reader refuses. */
export abstract class CodecError extends BucketStorageError {}

/** The 48-byte header is short, has the wrong magic, version, algorithm or chunk size. */
export class MalformedHeaderError extends CodecError {
  readonly code = 'MALFORMED_HEADER';
}

/** The header names a key id that is neither the current nor a previous key. */
export class UnknownKeyIdError extends CodecError {
  readonly code = 'UNKNOWN_KEY_ID';
  constructor(
    readonly keyId: string,
    readonly knownKeyIds: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      `object is encrypted with key id ${keyId}, which is neither the current key nor one of ` +
        `S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS (known: ${knownKeyIds.join(', ') || 'none'}); ` +
        `add the key it was written with to S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS`,
      options,
    );
  }
}

/**
 * The object ended early: before its last chunk (at a chunk boundary, or mid-chunk when the size is known;
 * `chunkIndex` is then the first chunk missing), or short of the size its metadata promised (no chunk named).
 */
export class TruncatedError extends CodecError {
  readonly code = 'TRUNCATED';
  readonly chunkIndex: number | undefined;
  constructor(message: string, options?: ErrorOptions & { chunkIndex?: number }) {
    super(message, options);
    this.chunkIndex = options?.chunkIndex;
  }
}

/** A chunk's tag did not verify: tampered, reordered, from another object, or the wrong key. */
export class AuthenticationError extends CodecError {
  readonly code = 'AUTHENTICATION_FAILED';
  constructor(
    readonly chunkIndex: number,
    options?: ErrorOptions,
  ) {
    super(
      `authentication failed at chunk ${chunkIndex}: the object was modified, truncated, reordered, ` +
        `copied from another segment, or encrypted with another key; no byte of this chunk was released`,
      options,
    );
  }
}

/** The plaintext read does not match the expected size or SHA-256 (announcement or stored metadata). */
export class IntegrityError extends BucketStorageError {
  readonly code = 'INTEGRITY_MISMATCH';
  constructor(
    readonly what: 'size' | 'sha256' | 'checksum',
    readonly expected: string,
    readonly actual: string,
    context: string,
    options?: ErrorOptions,
  ) {
    super(`${context}: ${what} mismatch, expected ${expected}, got ${actual}`, options);
  }
}

/** A file:// path resolves (after symlinks) outside its configured root. */
export class PathOutsideRootError extends BucketStorageError {
  readonly code = 'PATH_OUTSIDE_ROOT';
  constructor(
    readonly path: string,
    readonly rootVariable: string,
    readonly root: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      root === undefined
        ? `${describeValue(path)}: file:// locations are refused because ${rootVariable} is not set`
        : `${describeValue(path)} resolves outside ${rootVariable} (${root}); use a path inside it`,
      options,
    );
  }
}

/**
 * A restore destination that would overwrite the pipeline's own objects: a registered data bucket's key prefix
 * (the whole bucket when the prefix is empty) or the state bucket. Refused before any request.
 */
export class ProtectedDestinationError extends BucketStorageError {
  readonly code = 'DESTINATION_PROTECTED';
  constructor(
    readonly bucket: string,
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A `plain` (unencrypted) object found while encryption is on, that was not written while it was off (see
 * S3_STORAGE_PLAIN_OBJECTS_BEFORE): it may be a substitute, so it is never restored nor acknowledged.
 */
export class PlainObjectRefusedError extends BucketStorageError {
  readonly code = 'PLAIN_OBJECT_REFUSED';
  constructor(
    readonly bucket: string,
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

/** A source or destination location is missing, unreadable or not writable. */
export class LocationError extends BucketStorageError {
  readonly code = 'LOCATION_UNAVAILABLE';
  constructor(
    readonly location: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A segment is in none of the buckets searched. */
export class SegmentNotFoundError extends BucketStorageError {
  readonly code = 'SEGMENT_NOT_FOUND';
  /** `bucketsSearched`: every bucket looked in, in search order, as "s3://name (region)". */
  constructor(readonly key: string, readonly bucketsSearched: readonly string[], options?: ErrorOptions) {
    super(`segment object ${key} not found in any bucket searched: ${bucketsSearched.join(', ')}`, options);
  }
}

/** S3 or SQS refused or failed a request; `retryable` is true for throttling, 5xx and network errors. */
export class StorageError extends BucketStorageError {
  readonly code = 'STORAGE_FAILED';
  override readonly retryable: boolean;
  /** The HTTP status S3 answered with, when it answered (412 = a conditional write lost its race). */
  readonly httpStatus: number | undefined;
  constructor(
    readonly operation: string,
    readonly bucket: string,
    readonly key: string | undefined,
    message: string,
    options: { cause?: unknown; retryable: boolean; httpStatus?: number | undefined },
  ) {
    super(message, options);
    this.retryable = options.retryable;
    this.httpStatus = options.httpStatus;
  }
}

/** A byte range is reversed or lies outside the segment. */
export class InvalidRangeError extends BucketStorageError {
  readonly code = 'RANGE_INVALID';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The registry of buckets cannot be read, parsed or updated. */
export class RegistryError extends BucketStorageError {
  readonly code = 'REGISTRY_INVALID';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** A deletion mark in the state bucket cannot be read or parsed; it is left in place, never repaired. */
export class DeletionMarkError extends BucketStorageError {
  readonly code = 'DELETION_MARK_INVALID';
  constructor(
    readonly mark: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A segment's deletion is being carried out (its mark was claimed by cleanup) and can no longer be cancelled.
 * Retryable for an upload: once the deletion is done, the announcement uploads the segment afresh.
 */
export class DeletionInProgressError extends BucketStorageError {
  readonly code = 'DELETION_IN_PROGRESS';
  override readonly retryable = true;
  constructor(
    readonly segment: string,
    readonly mark: string,
    options?: ErrorOptions,
  ) {
    super(`the deletion of segment ${segment} is being carried out now (mark ${mark} was claimed by cleanup); it can no longer be cancelled. An upload announcement of it is retried and stores it afresh once the deletion is done`, options);
  }
}

/** `undelete` found no pending deletion of the segment. */
export class NoPendingDeletionError extends BucketStorageError {
  readonly code = 'NO_PENDING_DELETION';
  constructor(
    readonly segment: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
