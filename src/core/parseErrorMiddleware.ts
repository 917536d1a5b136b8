/**
 * A middy middleware for the Powertools parser middleware's failures. `parser()` throws a ParseError that says
 * only "Failed to parse schema" and keeps zod's issues as its cause; this one turns it into our
 * InvalidMessageError naming the field, so a malformed invocation fails as every other entry point says it.
 */
import { ParseError } from '@aws-lambda-powertools/parser/errors';
import type { MiddlewareObj } from '@middy/core';
import type * as z from 'zod';
import { invalidMessage, isIssueList } from './messages.ts';

/**
 * @example
 *   middy(handler).use(parser({ schema: fetchInvocationSchema })).use(invalidMessageOnParseError(fetchInvocationSchema, 'fetch invocation'));
 */
export function invalidMessageOnParseError(schema: z.ZodObject, what: string): MiddlewareObj {
  return {
    onError(request) {
      const { error } = request;
      if (error instanceof ParseError && isIssueList(error.cause)) {
        // Replaced, not thrown: middy rethrows request.error once every onError middleware has run.
        request.error = invalidMessage(error.cause, what, Object.keys(schema.shape), request.event, { cause: error });
      }
    },
  };
}
