/** `redrive [--dry-run] [--queue segments|deletions]`: moves a queue's dead-letter messages back to it. */
import { createClients } from '../../core/clients.ts';
import { loadConfig } from '../../core/config.ts';
import { requireQueueUrl, withDeadLetterQueue, type QueueName } from '../../core/queues.ts';
import { depth, peek, redrive } from '../../redrive/redrive.ts';
import { defineCommand, UsageError } from '../command.ts';

const VARIABLES: Readonly<Record<QueueName, string>> = { segments: 'S3_STORAGE_SEGMENTS_QUEUE_URL', deletions: 'S3_STORAGE_DELETIONS_QUEUE_URL' };

export const redriveCommand = defineCommand({
  summary: "moves a queue's dead-letter messages back to it, or shows them (--dry-run)",
  usage: 'redrive [--dry-run] [--queue segments|deletions]',
  options: { 'dry-run': { type: 'boolean' }, queue: { type: 'string' } },
  help: {
    description:
      "Moves every message of the queue's dead-letter queue (from its RedrivePolicy) back to the queue, once what made them fail is fixed: SQS's message move task on AWS, receive-and-send where the server has none. Prints the counts as JSON; exit 1 when some could not be moved. --dry-run moves nothing and prints the count and up to 10 messages with the reason they were dead-lettered (bks-error, bks-reason).",
    options: { 'dry-run': 'show the dead-letter messages and their reasons; move nothing', queue: 'segments (default: S3_STORAGE_SEGMENTS_QUEUE_URL) or deletions (S3_STORAGE_DELETIONS_QUEUE_URL)' },
    examples: ['bucket-storage redrive --dry-run', 'bucket-storage redrive --queue segments'],
  },
  async run(ctx) {
    const name = ctx.values.queue ?? 'segments';
    if (name !== 'segments' && name !== 'deletions') throw new UsageError(`--queue ${String(name)}: expected segments or deletions`);
    const config = loadConfig(ctx.env);
    const { sqs } = createClients(config);
    const queue = await withDeadLetterQueue(sqs, requireQueueUrl(config, name), VARIABLES[name]);
    const where = { queue: queue.url, deadLetterQueue: queue.deadLetter.url };
    if (ctx.values['dry-run'] === true) {
      ctx.stdout.write(`${JSON.stringify({ ...where, messages: await depth(sqs, queue.deadLetter.url), sample: await peek(sqs, queue) }, null, 2)}\n`);
      return 0;
    }
    const report = await redrive(sqs, queue);
    ctx.stdout.write(`${JSON.stringify({ ...where, ...report })}\n`);
    return report.failed === 0 ? 0 : 1;
  },
});
