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

/**
 * The part of an SQS event the upload function relies on: records, each with the messageId that failures are
 * reported by and a body. Anything else in a record is Lambda's and passes through unchecked. A record without
 * a messageId cannot be reported failed (Lambda would then fail the whole batch), so such an event is refused
 * whole with an InvalidMessageError naming the record.
 */
export const sqsEventSchema = z.looseObject({
  Records: z.array(z.looseObject({ messageId: z.string().min(1, 'must be a non-empty string'), body: z.string() })),
});

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
  throw invalidMessage(result.error.issues, what, allowed, input, { cause: result.error });
}

/** A validation issue as zod reports it, directly or through Standard Schema (Powertools' parser). */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined;
  readonly code?: unknown;
  readonly keys?: unknown;
  readonly input?: unknown;
  readonly expected?: unknown;
}

/**
 * The InvalidMessageError for the first issue of a failed validation, naming the field: the one wording for
 * every entry point (parseWith, the fetch function's parser middleware, the upload batch's record parser).
 * `input` is what was validated: a field of the wrong type is told from a missing one ("is required").
 */
export function invalidMessage(issues: readonly SchemaIssue[], what: string, allowed: readonly string[], input: unknown, options?: { cause?: unknown }): InvalidMessageError {
  const issue = issues[0];
  if (issue?.code === 'unrecognized_keys' && Array.isArray(issue.keys)) {
    const key = String(issue.keys[0] ?? '?');
    return new InvalidMessageError(key, `${what}: unknown field ${JSON.stringify(key)}; allowed: ${allowed.join(', ')}`, options);
  }
  const path = (issue?.path ?? []).map((p) => (typeof p === 'object' ? p.key : p));
  const field = path.map(String).join('.') || '(body)';
  const problem = issue?.code === 'invalid_type' ? typeProblem(input, path, String(issue.expected ?? 'another type')) : (issue?.message ?? 'is invalid');
  return new InvalidMessageError(field, `${what}: ${field} ${problem}`, options);
}

/** True when `value` is a list of validation issues (the cause Powertools' ParseError carries). */
export function isIssueList(value: unknown): value is readonly SchemaIssue[] {
  return Array.isArray(value) && value.every((i: unknown) => typeof i === 'object' && i !== null && 'message' in i && typeof i.message === 'string');
}

/** "is required" when the field at `path` is absent from `input`, else what type it has and should have. */
function typeProblem(input: unknown, path: readonly PropertyKey[], expected: string): string {
  let parent: unknown = input;
  for (const key of path.slice(0, -1)) parent = isRecord(parent) ? parent[String(key)] : undefined;
  const last = path.at(-1);
  const present = last === undefined ? input !== undefined : isRecord(parent) && Object.hasOwn(parent, String(last));
  if (!present) return 'is required';
  const value = last === undefined ? input : isRecord(parent) ? parent[String(last)] : undefined;
  return `must be ${article(expected)} ${expected}, not ${typeName(value)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `${article(typeof value)} ${typeof value}`;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

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
