import { createClients } from '../../core/clients.ts';
import { loadConfig } from '../../core/config.ts';
import { segmentAnnouncementSchema } from '../../core/messages.ts';
import { sendMessage } from '../../core/queues.ts';
import { defineCommand, requireOption, UsageError } from '../command.ts';

export const enqueueCommand = defineCommand({
  summary: 'sends a segment announcement to S3_STORAGE_SEGMENTS_QUEUE_URL',
  usage: 'enqueue --dataspace D --segment S --source URL [--size N] [--sha256 H]',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' }, source: { type: 'string' }, size: { type: 'string' }, sha256: { type: 'string' } },
  help: {
    description: 'Sends one segment announcement to S3_STORAGE_SEGMENTS_QUEUE_URL (validated first). To announce the files of a directory as they appear, use ship.',
    options: {
      dataspace: 'the segment\'s dataspace',
      segment: 'the segment id',
      source: 'where the upload function reads it: file:///path inside S3_STORAGE_SOURCE_ROOT, or s3://bucket/key of a staged copy',
      size: 'its size in bytes, checked by the upload',
      sha256: 'its SHA-256 (64 lowercase hex digits), checked by the upload',
    },
    examples: ['bucket-storage enqueue --dataspace logs --segment seg-0001 --source s3://staging-bucket/seg-0001'],
  },
  async run(ctx) {
    const config = loadConfig(ctx.env);
    const size = ctx.values.size;
    if (size !== undefined && (typeof size !== 'string' || !/^\d+$/.test(size))) throw new UsageError(`--size ${String(size)}: expected a whole number of bytes`);
    const message = {
      version: 1,
      dataspace: requireOption(ctx, 'dataspace'),
      segmentId: requireOption(ctx, 'segment'),
      source: requireOption(ctx, 'source'),
      ...(size !== undefined ? { size: Number(size) } : {}),
      ...(typeof ctx.values.sha256 === 'string' ? { sha256: ctx.values.sha256 } : {}),
    };
    const id = await sendMessage(createClients(config).sqs, config, { queue: 'segments', schema: segmentAnnouncementSchema, message, what: 'segment announcement' });
    ctx.stdout.write(`${JSON.stringify({ messageId: id, ...message })}\n`);
    return 0;
  },
});
