import { formatSegmentKey } from '../../core/objectKeys.ts';
import { requireOption, type Command } from '../command.ts';
import { loadOfflineConfig } from '../offlineConfig.ts';

export const keyCommand: Command = {
  summary: 'prints the object key the segment is stored under',
  usage: 'key --dataspace D --segment S',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' } },
  async run(ctx) {
    // Naming needs no key: S3_STORAGE_ENCRYPTION_KEY may be unset here (a set value is still validated).
    const key = ctx.env.S3_STORAGE_ENCRYPTION_KEY;
    const config = loadOfflineConfig({ ...ctx.env, S3_STORAGE_ENCRYPTION_KEY: key === undefined || key === '' ? 'off' : key });
    const objectKey = formatSegmentKey(config.keyPrefix, { dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') });
    ctx.stdout.write(`${objectKey}\n`);
    return 0;
  },
};
