/**
 * The message and invocation shapes of docs/FORMAT.md, written down once as schemas. Unknown fields are refused,
 * every field is validated, and a failure is one InvalidMessageError naming the field.
 */
import * as z from 'zod';
import { InvalidMessageError } from './errors.ts';
import { locationProblem } from './locations.ts';
import { identifierProblem } from './objectKeys.ts';

const identifier = z.string().superRefine((value, ctx) => {
  const problem = identifierProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});
const location = z.string().superRefine((value, ctx) => {
  const problem = locationProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});
const byteCount = z.number().int('must be a whole number').min(0, 'must be ≥ 0').max(Number.MAX_SAFE_INTEGER);

export const segmentAnnouncementSchema = z.strictObject({
  version: z.literal(1, 'must be 1'),
  dataspace: identifier,
  segmentId: identifier,
  source: location,
  size: byteCount.optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional(),
});
export type SegmentAnnouncement = z.infer<typeof segmentAnnouncementSchema>;

export const deletionAnnouncementSchema = z.strictObject({
  version: z.literal(1, 'must be 1'),
  dataspace: identifier,
  segmentId: identifier,
});
export type DeletionAnnouncement = z.infer<typeof deletionAnnouncementSchema>;

export const fetchInvocationSchema = z.strictObject({
  dataspace: identifier,
  segmentId: identifier,
  destination: location,
  range: z
    .strictObject({ start: byteCount, end: byteCount })
    .refine((r) => r.start <= r.end, { message: 'is reversed: start must be ≤ end', path: ['end'] })
    .optional(),
});
export type FetchInvocation = z.infer<typeof fetchInvocationSchema>;

export interface FetchAnswer {
  readonly bucket: string;
  readonly region: string;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
  readonly bytesWritten: number;
}

/** Validates `input` (already JSON-parsed) against `schema`; InvalidMessageError names the first bad field. */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const allowed = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
  throw invalidMessage(result.error.issues, what, allowed, { cause: result.error });
}

/** A validation issue as zod reports it, directly or through Standard Schema (Powertools' parser). */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined;
  readonly code?: unknown;
  readonly keys?: unknown;
  readonly input?: unknown;
}

/**
 * The InvalidMessageError for the first issue of a failed validation, naming the field: the one wording for
 * every entry point (parseWith, the fetch function's parser middleware, the upload batch's record parser).
 */
export function invalidMessage(issues: readonly SchemaIssue[], what: string, allowed: readonly string[], options?: { cause?: unknown }): InvalidMessageError {
  const issue = issues[0];
  if (issue?.code === 'unrecognized_keys' && Array.isArray(issue.keys)) {
    const key = String(issue.keys[0] ?? '?');
    return new InvalidMessageError(key, `${what}: unknown field ${JSON.stringify(key)}; allowed: ${allowed.join(', ')}`, options);
  }
  const field = issue?.path?.map((p) => String(typeof p === 'object' ? p.key : p)).join('.') || '(body)';
  const problem = issue?.code === 'invalid_type' && issue.input === undefined ? 'is required' : (issue?.message ?? 'is invalid');
  return new InvalidMessageError(field, `${what}: ${field} ${problem}`, options);
}

/** True when `value` is a list of validation issues (the cause Powertools' ParseError carries). */
export function isIssueList(value: unknown): value is readonly SchemaIssue[] {
  return Array.isArray(value) && value.every((i: unknown) => typeof i === 'object' && i !== null && 'message' in i && typeof i.message === 'string');
}

/** Parses a JSON text then validates it; malformed JSON is InvalidMessageError on field "(body)". */
export function parseJsonWith<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidMessageError('(body)', `${what}: body is not JSON (${(err as Error).message})`);
  }
  return parseWith(schema, value, what);
}
