/**
 * The deletion mark object (docs/FORMAT.md, "Deletion marks"): one JSON object in the state bucket per batch
 * of pending deletions, written down once here as a schema, both directions side by side.
 *
 *   {"version":1,"state":"pending","created":"2026-11-25T04:00:00.000Z","due":"2026-11-28T04:00:00.000Z",
 *    "segments":[{"dataspace":"logs","segmentId":"seg-0001"}, …]}
 *
 * `state` is "pending" (the deletions may still be cancelled) or "applying" (cleanup claimed the mark with a
 * conditional write: its deletions are being carried out and can no longer be cancelled; `claimed` says
 * when). A mark holds at most MAX_SEGMENTS_PER_MARK segments, so carrying it out is one DeleteObjects per
 * registered bucket.
 */
import * as z from 'zod';
import { DeletionMarkError } from '../errors.ts';
import { identifierProblem, type SegmentIdentity } from '../objectKeys.ts';

/** One DeleteObjects request per bucket carries out a whole mark. */
export const MAX_SEGMENTS_PER_MARK = 1000;

const identifier = z.string().superRefine((value, ctx) => {
  const problem = identifierProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const markSchema = z.strictObject({
  version: z.literal(1),
  state: z.enum(['pending', 'applying']),
  created: z.iso.datetime({ message: 'is not an ISO date-time' }),
  due: z.iso.datetime({ message: 'is not an ISO date-time' }),
  claimed: z.iso.datetime({ message: 'is not an ISO date-time' }).optional(),
  segments: z.array(z.strictObject({ dataspace: identifier, segmentId: identifier })).max(MAX_SEGMENTS_PER_MARK),
});

export type MarkDocument = z.infer<typeof markSchema>;

/** The identity as one string ("dataspace/segmentId"), for sets and maps. */
export const identityId = (identity: SegmentIdentity): string => `${identity.dataspace}/${identity.segmentId}`;

/** A new pending mark of `segments` (duplicates dropped), created at `created`, due at `due`. */
export function newMark(segments: readonly SegmentIdentity[], created: Date, due: Date): MarkDocument {
  const unique = new Map(segments.map((s) => [identityId(s), { dataspace: s.dataspace, segmentId: s.segmentId }]));
  if (unique.size > MAX_SEGMENTS_PER_MARK) throw new RangeError(`a deletion mark holds at most ${MAX_SEGMENTS_PER_MARK} segments`);
  return { version: 1, state: 'pending', created: created.toISOString(), due: due.toISOString(), segments: [...unique.values()] };
}

export function encodeMark(mark: MarkDocument): string {
  return `${JSON.stringify(mark)}\n`;
}

/** Parses a mark's body; DeletionMarkError names the mark and what is wrong. Never repaired automatically. */
export function parseMark(text: string, where: string): MarkDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DeletionMarkError(where, `${where} is not JSON (${err instanceof Error ? err.message : String(err)}); it is left in place: restore it from the state bucket's versions`, { cause: err });
  }
  const parsed = markSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DeletionMarkError(where, `${where} is not a valid deletion mark: ${issue?.path.join('.') || '(document)'} ${issue?.message ?? ''}; it is left in place: restore it from the state bucket's versions`, { cause: parsed.error });
  }
  return parsed.data;
}

/** Whether `mark` lists `identity`. */
export function markHolds(mark: MarkDocument, identity: SegmentIdentity): boolean {
  return mark.segments.some((s) => s.dataspace === identity.dataspace && s.segmentId === identity.segmentId);
}
