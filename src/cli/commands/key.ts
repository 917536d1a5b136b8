import { formatSegmentKey } from '../../core/objectKeys.ts';
import { requireOption, type Command } from '../command.ts';
import { loadOfflineConfig } from '../offlineConfig.ts';

export const keyCommand: Command = {
  summary: 'prints the object key the segment is stored under',
  usage: 'key --dataspace D --segment S',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' } },
  async run(ctx) {
    const config = loadOfflineConfig(ctx.env);
    const key = formatSegmentKey(config.keyPrefix, { dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') });
    ctx.stdout.write(`${key}\n`);
    return 0;
  },
};
