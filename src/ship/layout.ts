/**
 * How `bucket-storage ship` names the files it finds: a segment directory DIR holds DIR/<dataspace>/<segmentId>,
 * or, with --dataspace D, DIR/<segmentId> (every file one segment of D). Names that are not identifiers
 * (docs/FORMAT.md: hidden files, temporary files such as `.seg-1.tmp`, anything with a space) and entries that
 * are not regular files are not segments and are left alone. A segment's path relative to DIR is what the
 * functions see under S3_STORAGE_SOURCE_ROOT when DIR is shared with them (EFS).
 */
import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { identifierProblem, type SegmentIdentity } from '../core/objectKeys.ts';
import { LocationError } from '../core/errors.ts';
import { errnoCode } from '../core/confinement.ts';

export interface SegmentFile {
  readonly identity: SegmentIdentity;
  /** Absolute path on this node. */
  readonly path: string;
  /** Path relative to DIR, with `/` separators. */
  readonly relative: string;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface Layout {
  /** The segment directory, absolute. */
  readonly root: string;
  /** Every file is a segment of this dataspace (DIR/<segmentId>); otherwise DIR/<dataspace>/<segmentId>. */
  readonly dataspace?: string | undefined;
}

/** "dataspace/segmentId": how the state file and `ship --deleted` lists name a segment. */
export const segmentName = (identity: SegmentIdentity): string => `${identity.dataspace}/${identity.segmentId}`;

/** The identity of the file at `path` in `layout`, or a LocationError saying why it is not a segment there. */
export function identityOf(layout: Layout, path: string): SegmentIdentity {
  const abs = resolve(path);
  const rel = relative(layout.root, abs).split(sep);
  const fits = layout.dataspace === undefined ? rel.length === 2 : rel.length === 1;
  const segmentId = basename(abs);
  const dataspace = layout.dataspace ?? basename(dirname(abs));
  const problem = identifierProblem(segmentId) ?? identifierProblem(dataspace);
  if (!fits || rel[0] === '..' || problem !== undefined) {
    const form = layout.dataspace === undefined ? `${layout.root}/<dataspace>/<segmentId>` : `${layout.root}/<segmentId> (dataspace ${layout.dataspace})`;
    throw new LocationError(path, `${path} is not a segment file of the form ${form}${problem ? `: the name ${problem}` : ''}`);
  }
  return { dataspace, segmentId };
}

/** Regular files directly in `dir` whose names are identifiers; a missing directory has none. */
async function filesIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw new LocationError(dir, `${dir} cannot be listed (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  return names.filter((n) => identifierProblem(n) === undefined).sort();
}

/**
 * Every segment file under the layout's root, with its size and mtime. A directory that cannot be listed is a
 * LocationError (the caller must not take its files for deleted); a file that vanishes meanwhile is skipped.
 */
export async function listSegments(layout: Layout): Promise<SegmentFile[]> {
  const found: SegmentFile[] = [];
  const dirs = layout.dataspace === undefined ? (await filesIn(layout.root)).map((d) => ({ dataspace: d, dir: join(layout.root, d) })) : [{ dataspace: layout.dataspace, dir: layout.root }];
  for (const { dataspace, dir } of dirs) {
    if (layout.dataspace === undefined && !(await lstat(dir).catch(() => undefined))?.isDirectory()) continue;
    for (const segmentId of await filesIn(dir)) {
      const path = join(dir, segmentId);
      const info = await lstat(path).catch(() => undefined);
      if (info === undefined || !info.isFile()) continue;
      found.push({ identity: { dataspace, segmentId }, path, relative: relative(layout.root, path).split(sep).join('/'), size: info.size, mtimeMs: info.mtimeMs });
    }
  }
  return found;
}
