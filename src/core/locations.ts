/**
 * Sources and destinations: `file:///abs/path` (confined to a root directory after resolving symlinks) or
 * `s3://bucket/key` (percent-decoded). One parser for upload sources and restore destinations.
 */
import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUCKET_NAME_PATTERN, isBucketName } from './bucketNames.ts';
import { InvalidMessageError, LocationError, PathOutsideRootError } from './errors.ts';

export type Location = { readonly kind: 'file'; readonly path: string } | { readonly kind: 's3'; readonly bucket: string; readonly key: string };

const S3_URL = new RegExp(`^s3://(${BUCKET_NAME_PATTERN})/(.+)$`);
const FORM = 'must be file:///absolute/path or s3://bucket/key';

/** The location `url` names, or what is wrong with it (and the underlying error, if any). */
function tryParse(url: string): Location | { readonly problem: string; readonly cause?: unknown } {
  if (url.startsWith('file://')) {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (err) {
      return { problem: `${JSON.stringify(url)} is not a valid file:// URL (${err instanceof Error ? err.message : String(err)})`, cause: err };
    }
    if (!isAbsolute(path) || path.includes('\0')) return { problem: 'must be an absolute file:/// path' };
    return { kind: 'file', path };
  }
  const m = S3_URL.exec(url);
  const [, bucket, encodedKey] = m ?? [];
  if (bucket === undefined || encodedKey === undefined || !isBucketName(bucket)) return { problem: `${JSON.stringify(url)} ${FORM}` };
  try {
    return { kind: 's3', bucket, key: decodeURIComponent(encodedKey) };
  } catch (err) {
    return { problem: `${JSON.stringify(url)} has a bad percent-escape in its key`, cause: err };
  }
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

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && !rel.startsWith(`..${sep}`));
}

async function realRoot(root: string | undefined, rootVariable: string, path: string): Promise<string> {
  if (root === undefined) throw new PathOutsideRootError(path, rootVariable, undefined);
  try {
    return await realpath(root);
  } catch (err) {
    throw new LocationError(root, `${rootVariable} ${root} does not exist or cannot be read`, { cause: err });
  }
}

/** The real path of an existing file inside `root` (symlinks resolved); refuses anything outside. */
export async function resolveExistingInsideRoot(path: string, root: string | undefined, rootVariable: string): Promise<string> {
  const realRootPath = await realRoot(root, rootVariable, path);
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if (!inside(realRootPath, path)) throw new PathOutsideRootError(path, rootVariable, root);
    throw new LocationError(path, `${path} does not exist or cannot be read`, { cause: err });
  }
  if (!inside(realRootPath, real)) throw new PathOutsideRootError(path, rootVariable, root);
  return real;
}

/** The real path a new file at `path` would have inside `root` (its directory must exist); refuses outside. */
export async function resolveNewInsideRoot(path: string, root: string | undefined, rootVariable: string): Promise<string> {
  const realRootPath = await realRoot(root, rootVariable, path);
  let dir: string;
  try {
    dir = await realpath(dirname(path));
  } catch (err) {
    if (!inside(realRootPath, path)) throw new PathOutsideRootError(path, rootVariable, root);
    throw new LocationError(path, `the directory of ${path} does not exist`, { cause: err });
  }
  const real = join(dir, basename(path));
  if (!inside(realRootPath, real)) throw new PathOutsideRootError(path, rootVariable, root);
  try {
    // An existing destination that is a symlink must not lead outside either.
    const target = await realpath(real);
    if (!inside(realRootPath, target)) throw new PathOutsideRootError(path, rootVariable, root);
  } catch (err) {
    if (err instanceof PathOutsideRootError) throw err;
  }
  return real;
}
