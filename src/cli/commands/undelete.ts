/** `undelete --dataspace D --segment S`: cancels the pending deletion of a segment. */
import { undeleteSegment } from '../../cleanup/undelete.ts';
import { createRuntime } from '../../core/runtime.ts';
import { defineCommand, requireOption } from '../command.ts';

export const undeleteCommand = defineCommand({
  summary: 'cancels the pending deletion of a segment (before it is due)',
  usage: 'undelete --dataspace D --segment S',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' } },
  help: {
    description:
      'Cancels the pending deletion of a segment (one announced with delete or ship --deleted, not yet carried out: S3_STORAGE_DELETION_DELAY_HOURS have not passed since cleanup marked it). Prints the cancelled marks as JSON. Fails with NoPendingDeletionError when there is none, and with DeletionInProgressError once cleanup has started carrying it out.',
    options: { dataspace: "the segment's dataspace", segment: 'the segment id' },
    examples: ['bucket-storage undelete --dataspace logs --segment seg-0001'],
  },
  async run(ctx) {
    const identity = { dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') };
    const changed = await undeleteSegment(await createRuntime(ctx.env), identity);
    ctx.stdout.write(`${JSON.stringify({ ...identity, cancelled: changed.map((m) => m.key) })}\n`);
    return 0;
  },
});
