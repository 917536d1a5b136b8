/**
 * The one rule for S3 bucket names (general purpose buckets): 3 to 63 characters of lowercase letters, digits,
 * dots and hyphens, starting and ending with a letter or digit, no "..", not an IP address. Config, the
 * registry and s3:// locations all check names with it.
 */
export const BUCKET_NAME_FORM = '3 to 63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';

/** The bucket-name characters, for patterns that embed a bucket name (s3://bucket/key). */
export const BUCKET_NAME_PATTERN = '[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]';
const WHOLE_NAME = new RegExp(`^${BUCKET_NAME_PATTERN}$`);

/** True when `name` is a valid bucket name. */
export function isBucketName(name: string): boolean {
  return WHOLE_NAME.test(name) && !name.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(name);
}

/** A refinement message for schemas. */
export const BUCKET_NAME_MESSAGE = `is not a valid S3 bucket name; expected ${BUCKET_NAME_FORM}, no '..', not an IP address`;
