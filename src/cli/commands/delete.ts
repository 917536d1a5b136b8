import { createClients } from '../../core/clients.ts';
import { loadConfig } from '../../core/config.ts';
import { deletionAnnouncementSchema } from '../../core/messages.ts';
import { sendMessage } from '../../core/queues.ts';
import { defineCommand, requireOption } from '../command.ts';

export const deleteCommand = defineCommand({
  summary: 'sends a deletion announcement to S3_STORAGE_DELETIONS_QUEUE_URL',
  usage: 'delete --dataspace D --segment S',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' } },
  help: {
    description: 'Sends one deletion announcement to S3_STORAGE_DELETIONS_QUEUE_URL; the cleanup function deletes the segment\'s object from every registered bucket on its next run. For many segments at once, use ship --deleted.',
    options: { dataspace: 'the segment\'s dataspace', segment: 'the segment id' },
    examples: ['bucket-storage delete --dataspace logs --segment seg-0001'],
  },
  async run(ctx) {
    const config = loadConfig(ctx.env);
    const message = { version: 1, dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') };
    const id = await sendMessage(createClients(config).sqs, config, { queue: 'deletions', schema: deletionAnnouncementSchema, message, what: 'deletion announcement' });
    ctx.stdout.write(`${JSON.stringify({ messageId: id, ...message })}\n`);
    return 0;
  },
});
