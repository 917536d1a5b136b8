/** The one place that sends messages: announcements are validated against their schema before they leave. */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import { parseWith } from './messages.ts';

/** Validates `message` with `schema` and sends it as JSON to `queueUrl` (named by `variable` when unset). */
export async function sendMessage<T>(sqs: SQSClient, queueUrl: string | undefined, variable: string, schema: z.ZodType<T>, message: unknown, what: string): Promise<string> {
  if (queueUrl === undefined) throw new ConfigError(variable, `${variable} is not set; it names the queue ${what}s are sent to`);
  const body = parseWith(schema, message, what);
  const out = await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }));
  return out.MessageId ?? '';
}
