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
import { requireOption, UsageError, type Command } from '../command.ts';

export const deleteCommand: Command = {
  summary: 'sends a deletion announcement (deleted after the grace period); --now --yes deletes at once',
  usage: 'delete --dataspace D --segment S [--now --yes]',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' }, now: { type: 'boolean' }, yes: { type: 'boolean' } },
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
};
