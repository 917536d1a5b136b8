/** Message validation: wrong types named as such, hostile sizes bounded, SQS events without message ids refused. */
import type { SQSEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/core/errors.ts';
import { fetchInvocationSchema, parseJsonWith, parseWith, segmentAnnouncementSchema } from '../src/core/messages.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { thrown } from './support/thrown.ts';

const messageOf = (fn: () => unknown): string => thrown(fn, InvalidMessageError).message;

const good = { version: 1, dataspace: 'd', segmentId: 's', source: 'file:///x' };

describe('parseWith', () => {
  it('a field of the wrong type is reported as the wrong type, a missing one as required', () => {
    expect(messageOf(() => parseWith(segmentAnnouncementSchema, { ...good, dataspace: 5 }, 'a'))).toBe('a: dataspace must be a string, not a number');
    expect(messageOf(() => parseWith(segmentAnnouncementSchema, { ...good, size: '12' }, 'a'))).toBe('a: size must be a number, not a string');
    expect(messageOf(() => parseWith(segmentAnnouncementSchema, { ...good, source: null }, 'a'))).toBe('a: source must be a string, not null');
    expect(messageOf(() => parseWith(segmentAnnouncementSchema, { ...good, segmentId: ['s'] }, 'a'))).toBe('a: segmentId must be a string, not an array');
    expect(messageOf(() => parseWith(fetchInvocationSchema, { dataspace: 'd', segmentId: 's', destination: 'file:///x', range: { start: 'a', end: 1 } }, 'f'))).toBe('f: range.start must be a number, not a string');
    expect(messageOf(() => parseWith(fetchInvocationSchema, { dataspace: 'd', segmentId: 's', destination: 'file:///x', range: 7 }, 'f'))).toBe('f: range must be an object, not a number');
    const { dataspace: _omitted, ...missing } = good;
    expect(messageOf(() => parseWith(segmentAnnouncementSchema, missing, 'a'))).toBe('a: dataspace is required');
    expect(messageOf(() => parseWith(segmentAnnouncementSchema, undefined, 'a'))).toBe('a: (body) is required');
    expect(messageOf(() => parseJsonWith(segmentAnnouncementSchema, '"text"', 'a'))).toBe('a: (body) must be an object, not a string');
  });

  it('a 20 MB identifier or location gives a typed error with a short message', () => {
    const huge = '\u0001'.repeat(20 * 1024 * 1024);
    for (const input of [
      { ...good, dataspace: huge },
      { ...good, segmentId: 'a'.repeat(20 * 1024 * 1024) },
      { ...good, source: huge },
      { ...good, source: `file:///${'a'.repeat(20 * 1024 * 1024)}` },
      { ...good, source: `s3://bucket/${'k'.repeat(2000)}` },
    ]) {
      expect(messageOf(() => parseWith(segmentAnnouncementSchema, input, 'a')).length).toBeLessThan(300);
    }
  });
});

describe('the upload handler', () => {
  it('refuses an event whose record has no messageId (or no records) with a typed error, not a TypeError', async () => {
    const { handler } = await import('../functions/upload.ts');
    const record = { body: JSON.stringify(good), receiptHandle: 'r', attributes: {}, messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: 'arn:aws:sqs:us-east-1:0:q', awsRegion: 'us-east-1' };
    for (const [event, field] of [
      [{ Records: [record] }, 'Records.0.messageId'],
      [{ Records: [{ ...record, messageId: '' }] }, 'Records.0.messageId'],
      [{ Records: [null] }, 'Records.0'],
      [{}, 'Records'],
    ] as const) {
      await expect(handler(event as unknown as SQSEvent, lambdaContext('upload'))).rejects.toMatchObject({ name: 'InvalidMessageError', field });
    }
  });

  it('a record with a 20 MB identifier fails alone, by its messageId', async () => {
    const { handler } = await import('../functions/upload.ts');
    const body = JSON.stringify({ ...good, dataspace: 'a'.repeat(20 * 1024 * 1024) });
    const event = { Records: [{ messageId: 'huge', body, receiptHandle: 'r', attributes: {}, messageAttributes: {}, md5OfBody: '', eventSource: 'aws:sqs', eventSourceARN: 'arn:aws:sqs:us-east-1:0:q', awsRegion: 'us-east-1' }] };
    await expect(handler(event as unknown as SQSEvent, lambdaContext('upload'))).resolves.toEqual({ batchItemFailures: [{ itemIdentifier: 'huge' }] });
  });
});
