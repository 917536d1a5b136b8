/** `undelete --dataspace D --segment S`: cancels the pending deletion of a segment. */
import { undeleteSegment } from '../../cleanup/undelete.ts';
import { createRuntime } from '../../core/runtime.ts';
import { requireOption, type Command } from '../command.ts';

export const undeleteCommand: Command = {
  summary: 'cancels the pending deletion of a segment (before it is due)',
  usage: 'undelete --dataspace D --segment S',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' } },
  async run(ctx) {
    const identity = { dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') };
    const changed = await undeleteSegment(await createRuntime(ctx.env), identity);
    ctx.stdout.write(`${JSON.stringify({ ...identity, cancelled: changed.map((m) => m.key) })}\n`);
    return 0;
  },
};
