/**
 * `delete --dataspace D --segment S`: sends a deletion announcement (carried out after the grace period).
 * `delete --now --yes --dataspace D --segment S`: the operator deletes the segment from every registered bucket
 * at once, skipping the grace period; refused without --yes, since it cannot be undone.
 */
import { deleteSegmentNow } from '../../cleanup/deleteNow.ts';
import { createClients } from '../../core/clients.ts';
import { loadConfig } from '../../core/config.ts';
import { deletionAnnouncementSchema } from '../../core/messages.ts';
import { sendMessage } from '../../core/queues.ts';
import { createRuntime } from '../../core/runtime.ts';
import { defineCommand, requireOption, UsageError } from '../command.ts';

export const deleteCommand = defineCommand({
  summary: 'sends a deletion announcement (deleted after the grace period); --now --yes deletes at once',
  usage: 'delete --dataspace D --segment S [--now --yes]',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' }, now: { type: 'boolean' }, yes: { type: 'boolean' } },
  help: {
    description:
      "Sends one deletion announcement to S3_STORAGE_DELETIONS_QUEUE_URL. The cleanup function marks the segment for deletion and deletes its object from every registered bucket once S3_STORAGE_DELETION_DELAY_HOURS have passed (undelete cancels it until then). Prints the message id and the delay as JSON. --now --yes deletes it from every registered bucket at once instead, skipping the grace period (no undo). For many segments at once, use ship --deleted.",
    options: {
      dataspace: "the segment's dataspace",
      segment: 'the segment id',
      now: 'delete at once from every registered bucket instead of announcing (needs --yes; cannot be undone)',
      yes: 'confirms --now',
    },
    examples: ['bucket-storage delete --dataspace logs --segment seg-0001', 'bucket-storage delete --dataspace logs --segment seg-0001 --now --yes'],
  },
  async run(ctx) {
    const identity = { dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') };
    if (ctx.values.now === true) {
      if (ctx.values.yes !== true) {
        throw new UsageError(`--now deletes ${identity.dataspace}/${identity.segmentId} from every registered bucket at once, skipping the grace period; it cannot be undone. Add --yes to confirm`);
      }
      const result = await deleteSegmentNow(await createRuntime(ctx.env), identity);
      const done = result.marksApplied === 1;
      ctx.stdout.write(`${JSON.stringify({ ...identity, deletedNow: done, ...result })}\n`);
      if (!done) ctx.stderr.write(`bucket-storage delete: not deleted everywhere (${result.failures[0] ?? 'unknown failure'}); the deletion stays recorded in ${result.mark} and the next cleanup run finishes it\n`);
      return done ? 0 : 1;
    }
    if (ctx.values.yes === true) throw new UsageError('--yes only confirms --now');
    const config = loadConfig(ctx.env);
    const message = { version: 1, ...identity };
    const id = await sendMessage(createClients(config).sqs, config, { queue: 'deletions', schema: deletionAnnouncementSchema, message, what: 'deletion announcement' });
    ctx.stdout.write(`${JSON.stringify({ messageId: id, ...message, delayHours: config.deletionDelayHours })}\n`);
    return 0;
  },
});
