/**
 * The one key-naming module: where a segment lives in a bucket, and the inverse parser.
 *
 *   key  = prefix + hash + "/bks/" + dataspace + "/" + segmentId
 *   hash = first 4 hex digits of SHA-256(UTF-8(dataspace + "/" + segmentId))
 *
 * The hash comes first (after the prefix) so that keys spread over S3's per-prefix request partitions instead
 * of one hot prefix. The parser accepts exactly the keys `formatSegmentKey` produces: the right prefix, exactly
 * four components after it, the literal "bks", valid identifiers and the matching hash. A key of another
 * cluster (another prefix), a foreign object, or a key whose hash does not match is refused, which is what
 * keeps cleanup from ever deleting anything it did not write.
 */
import { createHash } from 'node:crypto';
import { InvalidIdentifierError } from './errors.ts';

export interface SegmentIdentity {
  readonly dataspace: string;
  readonly segmentId: string;
}

export const MAX_IDENTIFIER_LENGTH = 128;
export const MAX_PREFIX_LENGTH = 512;
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PREFIX_COMPONENT = /^[A-Za-z0-9._-]+$/;
const MARKER = 'bks';

function describeChar(value: string): string {
  const bad = [...value].find((c) => !/[A-Za-z0-9._-]/.test(c)) ?? '';
  const code = bad.codePointAt(0) ?? 0;
  return code < 0x20 || code === 0x7f ? `control character U+${code.toString(16).padStart(4, '0')}` : `character ${JSON.stringify(bad)}`;
}

/** What is wrong with `value` as an identifier ("is empty", "contains \"..\"", …), or undefined if it is fine. */
export function identifierProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return `is empty; expected 1..${MAX_IDENTIFIER_LENGTH} characters of A-Z a-z 0-9 . _ -`;
  if (value.length > MAX_IDENTIFIER_LENGTH) return `is ${value.length} characters long; at most ${MAX_IDENTIFIER_LENGTH} are allowed`;
  if (value.includes('..')) return `${JSON.stringify(value)} contains ".."; it is refused`;
  if (!IDENTIFIER.test(value)) {
    const why = /^[A-Za-z0-9]/.test(value) ? `contains a ${describeChar(value)}` : 'does not start with a letter or digit';
    return `${JSON.stringify(value)} ${why}; expected A-Z a-z 0-9 . _ - starting with a letter or digit`;
  }
  return undefined;
}

/** Throws InvalidIdentifierError naming `field` unless `value` is a safe identifier. */
export function validateIdentifier(field: string, value: unknown): string {
  const problem = identifierProblem(value);
  if (problem !== undefined || typeof value !== 'string') throw new InvalidIdentifierError(field, `${field} ${problem ?? 'must be a string'}`);
  return value;
}

/** Validates both fields of a segment identity and returns it. */
export function validateIdentity(identity: SegmentIdentity): SegmentIdentity {
  return { dataspace: validateIdentifier('dataspace', identity.dataspace), segmentId: validateIdentifier('segmentId', identity.segmentId) };
}

/** '' or components of A-Z a-z 0-9 . _ - joined by '/', returned with one trailing '/'. */
export function normalisePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  if (trimmed.length > MAX_PREFIX_LENGTH) throw new InvalidIdentifierError('prefix', `the prefix is ${trimmed.length} characters long; at most ${MAX_PREFIX_LENGTH} are allowed`);
  for (const component of trimmed.split('/')) {
    if (component === '' || component === '.' || component === '..' || !PREFIX_COMPONENT.test(component)) {
      throw new InvalidIdentifierError('prefix', `prefix component ${JSON.stringify(component)} is not allowed; expected components of A-Z a-z 0-9 . _ - separated by single '/'`);
    }
  }
  return `${trimmed}/`;
}

/** The partition-spreading hash component: 4 lowercase hex digits. */
export function partitionHash(identity: SegmentIdentity): string {
  return createHash('sha256').update(`${identity.dataspace}/${identity.segmentId}`, 'utf8').digest('hex').slice(0, 4);
}

/** The object key of a segment. `prefix` is '' or normalised (see normalisePrefix). */
export function formatSegmentKey(prefix: string, identity: SegmentIdentity): string {
  const { dataspace, segmentId } = validateIdentity(identity);
  return `${prefix}${partitionHash(identity)}/${MARKER}/${dataspace}/${segmentId}`;
}

/** The segment identity of `key` under `prefix`, or undefined when the key is not one `formatSegmentKey` makes. */
export function parseSegmentKey(prefix: string, key: string): SegmentIdentity | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const [hash, marker, dataspace, segmentId, ...rest] = key.slice(prefix.length).split('/');
  if (hash === undefined || marker !== MARKER || dataspace === undefined || segmentId === undefined || rest.length > 0) return undefined;
  try {
    validateIdentity({ dataspace, segmentId });
  } catch {
    return undefined;
  }
  const identity = { dataspace, segmentId };
  return partitionHash(identity) === hash ? identity : undefined;
}

/** The directory of bucket-storage's own state under a prefix (in the state bucket). Never a segment key's
 *  first component: those are 4 hex digits. */
export const STATE_DIRECTORY = '_bucket-storage/';
const REGISTRY_NAME = 'registry.json';

/** Where the registry of buckets lives in the state bucket. Never parses as a segment key. */
export function registryKey(prefix: string): string {
  return `${prefix}${STATE_DIRECTORY}${REGISTRY_NAME}`;
}

/**
 * The prefix a registry key belongs to ('' or ending in '/'), or undefined when `key` is not a registry key.
 * Finds other clusters' (or an earlier configuration's) registries in a listing of the state bucket.
 */
export function prefixOfRegistryKey(key: string): string | undefined {
  const suffix = `${STATE_DIRECTORY}${REGISTRY_NAME}`;
  if (!key.endsWith(suffix)) return undefined;
  const prefix = key.slice(0, -suffix.length);
  try {
    return normalisePrefix(prefix) === prefix ? prefix : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Deletion marks (docs/FORMAT.md, "Deletion marks"): one JSON object per batch of pending deletions, at
 *
 *   prefix + "_bucket-storage/deletions/" + due + "-" + id + ".json"
 *   due = the UTC second the deletions fall due, as YYYYMMDDTHHMMSSZ (fixed width: a listing is in due order)
 *   id  = 16 lowercase hex digits, random per mark
 *
 * A mark key never parses as a segment key (its first component is not 4 hex digits, it has 3 components).
 */
export function deletionMarksPrefix(prefix: string): string {
  return `${prefix}${STATE_DIRECTORY}deletions/`;
}

const MARK_NAME = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([0-9a-f]{16})\.json$/;
const MARK_ID = /^[0-9a-f]{16}$/;

/** The mark key for marks falling due at `due` (a whole second: see markDueTime). */
export function formatDeletionMarkKey(prefix: string, due: Date, id: string): string {
  if (!MARK_ID.test(id)) throw new InvalidIdentifierError('markId', `deletion mark id ${JSON.stringify(id)} is not 16 lowercase hex digits`);
  if (due.getTime() % 1000 !== 0) throw new InvalidIdentifierError('due', `deletion due time ${due.toISOString()} is not a whole second`);
  const stamp = due.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  if (!/^\d{8}T\d{6}Z$/.test(stamp)) throw new InvalidIdentifierError('due', `deletion due time ${due.toISOString()} is outside years 0000..9999`);
  return `${deletionMarksPrefix(prefix)}${stamp}-${id}.json`;
}

/** A mark's due time: `created + delay`, truncated to the second its key can name. */
export function markDueTime(created: Date, delayMs: number): Date {
  return new Date(Math.floor((created.getTime() + delayMs) / 1000) * 1000);
}

/** The due time and id of a mark key under `prefix`, or undefined when `key` is not one. */
export function parseDeletionMarkKey(prefix: string, key: string): { readonly due: Date; readonly id: string } | undefined {
  const base = deletionMarksPrefix(prefix);
  if (!key.startsWith(base)) return undefined;
  const m = MARK_NAME.exec(key.slice(base.length));
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, id] = m;
  const due = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  if (Number.isNaN(due.getTime()) || id === undefined || formatDeletionMarkKey(prefix, due, id) !== key) return undefined;
  return { due, id };
}

/** Where the cleanup's storage size logger keeps its state in the state bucket, beside the registry. */
export function storageSizeKey(prefix: string): string {
  return `${prefix}_bucket-storage/storage-size.json`;
}
