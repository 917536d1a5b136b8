/**
 * The batch processor's parser for SQS records whose body is one of our JSON messages. The record is checked in
 * one pass against what `innerSchema` + `transformer: 'json'` builds (Powertools' SqsRecordSchema, the body
 * decoded by JSONStringified then validated by our schema); unlike the stock `parser` of
 * @aws-lambda-powertools/batch/parser, whose ParsingError keeps only a joined message, a failure is our
 * InvalidMessageError naming the field, and fails that record alone.
 */
import type { parser } from '@aws-lambda-powertools/batch/parser';
import { JSONStringified } from '@aws-lambda-powertools/parser/helpers';
import { SqsRecordSchema } from '@aws-lambda-powertools/parser/schemas/sqs';
import type { SQSRecord } from 'aws-lambda';
import type * as z from 'zod';
import { invalidMessage, type SchemaIssue } from './messages.ts';

/** What `new BatchProcessor(EventType.SQS, …)` takes to parse each record's body with `schema`. */
export interface SqsMessageParsing {
  readonly parser: typeof parser;
  readonly schema: z.ZodType;
}

/**
 * @example
 *   const processor = new BatchProcessor(EventType.SQS, { ...sqsMessageParsing(segmentAnnouncementSchema, 'segment announcement'), logger });
 *   // recordHandler(record: ParsedRecord<SQSRecord, SegmentAnnouncement>)
 */
export function sqsMessageParsing(body: z.ZodObject, what: string): SqsMessageParsing {
  const schema = SqsRecordSchema.extend({ body: JSONStringified(body) });
  const allowed = Object.keys(body.shape);
  return {
    schema,
    parser: async (record) => {
      const result = schema.safeParse(record);
      // Parsing boundary: the hook is declared to return the raw record type; the processor hands this parsed
      // record (body: the message) to the record handler, which types it ParsedRecord<SQSRecord, Message>.
      if (result.success) return result.data as unknown as SQSRecord;
      const [first] = result.error.issues;
      if (first?.path[0] === 'body') throw invalidMessage([withinBody(first)], what, allowed, { cause: result.error });
      throw invalidMessage(result.error.issues, 'SQS record', Object.keys(SqsRecordSchema.shape), { cause: result.error });
    },
  };
}

/** The issue with its path relative to the message, so the field reads as in every other entry point. */
function withinBody(issue: SchemaIssue & { readonly path: readonly PropertyKey[] }): SchemaIssue {
  return { ...issue, path: issue.path.slice(1) };
}
