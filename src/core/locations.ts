/**
 * Sources and destinations: `file:///abs/path` (confined to a root directory, see confinement.ts) or
 * `s3://bucket/key` (percent-decoded). One parser for upload sources and restore destinations.
 */
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUCKET_NAME_PATTERN, isBucketName } from './bucketNames.ts';
import { describeValue, InvalidMessageError } from './errors.ts';

export type Location = { readonly kind: 'file'; readonly path: string } | { readonly kind: 's3'; readonly bucket: string; readonly key: string };

const S3_URL = new RegExp(`^s3://(${BUCKET_NAME_PATTERN})/(.+)$`);
const FORM = 'must be file:///absolute/path or s3://bucket/key';
/** Longest location accepted: a Linux path is at most 4,096 bytes, an S3 key 1,024; escapes take room. */
export const MAX_LOCATION_LENGTH = 8192;
const MAX_S3_KEY_BYTES = 1024;

/** The location `url` names, or what is wrong with it (and the underlying error, if any). */
function tryParse(url: string): Location | { readonly problem: string; readonly cause?: unknown } {
  if (url.length > MAX_LOCATION_LENGTH) return { problem: `is ${url.length} characters long; at most ${MAX_LOCATION_LENGTH} are allowed` };
  if (url.startsWith('file://')) {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (err) {
      return { problem: `${describeValue(url)} is not a valid file:// URL (${err instanceof Error ? err.message : String(err)})`, cause: err };
    }
    if (!isAbsolute(path) || path.includes('\0')) return { problem: 'must be an absolute file:/// path' };
    return { kind: 'file', path };
  }
  const m = S3_URL.exec(url);
  const [, bucket, encodedKey] = m ?? [];
  if (bucket === undefined || encodedKey === undefined || !isBucketName(bucket)) return { problem: `${describeValue(url)} ${FORM}` };
  let key: string;
  try {
    key = decodeURIComponent(encodedKey);
  } catch (err) {
    return { problem: `${describeValue(url)} has a bad percent-escape in its key`, cause: err };
  }
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_S3_KEY_BYTES) return { problem: `has a key of ${bytes} bytes; S3 keys are at most ${MAX_S3_KEY_BYTES}` };
  return { kind: 's3', bucket, key };
}

/** What is wrong with `url` as a source or destination, or undefined when it is a valid location. */
export function locationProblem(url: string): string | undefined {
  const parsed = tryParse(url);
  return 'problem' in parsed ? parsed.problem : undefined;
}

/** Parses a file:// or s3:// URL; InvalidMessageError names `field` when it is neither. */
export function parseLocation(field: string, url: string): Location {
  const parsed = tryParse(url);
  if ('problem' in parsed) throw new InvalidMessageError(field, `${field} ${parsed.problem}`, { cause: parsed.cause });
  return parsed;
}
