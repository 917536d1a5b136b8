/**
 * Edges of the message parsers that the mutation run (docs/MUTATION.md) found untested: an unknown field, a
 * reversed range, malformed JSON, a wrongly typed nested or null field, the refusal text of an
 * invalid identifier, the zod error kept as cause, isIssueList, and an SQS record without a body.
 */
import type { SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { InvalidMessageError } from '../src/core/errors.ts';
import { fetchInvocationSchema, isIssueList, parseJsonWith, parseWith } from '../src/core/messages.ts';
import { sqsMessageParsing } from '../src/core/sqsRecordParser.ts';

const OK = { dataspace: 'logs', segmentId: 'seg-1', destination: 'file:///tmp/x' };

function refusal(f: () => unknown): InvalidMessageError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidMessageError);
    return err as InvalidMessageError;
  }
  throw new Error('accepted');
}

describe('message parsing, edges', () => {
  it('an unknown field is named, with the fields allowed', () => {
    const err = refusal(() => parseWith(fetchInvocationSchema, { ...OK, extra: 1 }, 'fetch invocation'));
    expect(err.field).toBe('extra');
    expect(err.message).toBe('fetch invocation: unknown field "extra"; allowed: dataspace, segmentId, destination, range');
  });

  it('a reversed range is refused on range.end; an equal start and end is one byte', () => {
    const err = refusal(() => parseWith(fetchInvocationSchema, { ...OK, range: { start: 5, end: 4 } }, 'fetch invocation'));
    expect(err.field).toBe('range.end');
    expect(err.message).toBe('fetch invocation: range.end is reversed: start must be ≤ end');
    expect(parseWith(fetchInvocationSchema, { ...OK, range: { start: 5, end: 5 } }, 'fetch invocation').range).toEqual({ start: 5, end: 5 });
  });

  it('the reason of an invalid identifier is kept, and the zod error is the cause', () => {
    const err = refusal(() => parseWith(fetchInvocationSchema, { ...OK, dataspace: 'a/b' }, 'fetch invocation'));
    expect(err.field).toBe('dataspace');
    expect(err.message).toMatch(/^fetch invocation: dataspace .*contains a character "\/"/);
    expect(err.cause).toBeInstanceOf(z.ZodError);
  });

  it('a wrongly typed field, nested or null, is named with the type it has and should have', () => {
    const schema = z.object({ a: z.object({ b: z.string() }) });
    expect(refusal(() => parseWith(schema, { a: null }, 'm')).message).toBe('m: a must be an object, not null');
    expect(refusal(() => parseWith(schema, { a: { b: 1 } }, 'm')).message).toBe('m: a.b must be a string, not a number');
    const deep = z.object({ a: z.object({ b: z.object({ c: z.string() }) }) });
    expect(refusal(() => parseWith(deep, { a: { b: { c: null } } }, 'm')).message).toBe('m: a.b.c must be a string, not null');
  });

  it('malformed JSON is refused on (body) with the parser\'s reason', () => {
    const err = refusal(() => parseJsonWith(fetchInvocationSchema, '{"dataspace":', 'fetch invocation'));
    expect(err.field).toBe('(body)');
    expect(err.message).toMatch(/^fetch invocation: body is not JSON \(.+\)$/);
  });

  it('isIssueList: a list of objects with a string message, and nothing else', () => {
    expect(isIssueList([{ message: 'x' }, { message: 'y', path: ['a'] }])).toBe(true);
    expect(isIssueList([])).toBe(true);
    expect(isIssueList([{ message: 'x' }, { message: 1 }])).toBe(false);
    expect(isIssueList([{ message: 'x' }, null])).toBe(false);
    expect(isIssueList(['x'])).toBe(false);
    expect(isIssueList({ message: 'x' })).toBe(false);
  });

  it('an SQS record without a body is refused as (record)', async () => {
    const { parser } = sqsMessageParsing(fetchInvocationSchema, 'fetch invocation');
    const call = parser as unknown as (record: unknown) => Promise<SQSRecord>;
    await expect(call({ messageId: 'm-1' })).rejects.toMatchObject({ field: '(record)', message: 'fetch invocation: not an SQS record' });
    await expect(call({ messageId: 'm-2', body: JSON.stringify(OK) })).resolves.toMatchObject({ body: OK });
  });
});
