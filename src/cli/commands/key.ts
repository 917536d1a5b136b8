import { formatSegmentKey } from '../../core/objectKeys.ts';
import { defineCommand, requireOption } from '../command.ts';
import { loadOfflineConfig } from '../offlineConfig.ts';

export const keyCommand = defineCommand({
  summary: 'prints the object key the segment is stored under',
  usage: 'key --dataspace D --segment S',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' } },
  help: {
    description: 'Prints the object key the segment is stored under (with S3_STORAGE_OBJECT_KEY_PREFIX; docs/FORMAT.md). Needs no key and touches no bucket.',
    options: { dataspace: 'the segment\'s dataspace', segment: 'the segment id' },
    examples: ['bucket-storage key --dataspace logs --segment seg-0001'],
  },
  async run(ctx) {
    // Naming needs no key: S3_STORAGE_ENCRYPTION_KEY may be unset here (a set value is still validated).
    const key = ctx.env.S3_STORAGE_ENCRYPTION_KEY;
    const config = loadOfflineConfig({ ...ctx.env, S3_STORAGE_ENCRYPTION_KEY: key === undefined || key === '' ? 'off' : key });
    const objectKey = formatSegmentKey(config.keyPrefix, { dataspace: requireOption(ctx, 'dataspace'), segmentId: requireOption(ctx, 'segment') });
    ctx.stdout.write(`${objectKey}\n`);
    return 0;
  },
});
