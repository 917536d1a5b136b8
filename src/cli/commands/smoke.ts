/** `smoke`: after a deploy, one generated segment announced, stored, restored, checked and deleted (src/smoke/). */
import { tmpdir } from 'node:os';
import { ConfigError } from '../../core/errors.ts';
import { validateIdentifier } from '../../core/objectKeys.ts';
import { createRuntime } from '../../core/runtime.ts';
import { runSmoke } from '../../smoke/smoke.ts';
import { defineCommand, wholeNumberOption } from '../command.ts';
import { stagerFor } from '../stagingOption.ts';

export const smokeCommand = defineCommand({
  summary: 'after a deploy: announces a generated segment, waits for it, restores, checks it and announces its deletion',
  usage: 'smoke [--staging s3://BUCKET/PREFIX] [--dir DIR] [--size BYTES] [--timeout S] [--dataspace D]',
  options: { staging: { type: 'string' }, dir: { type: 'string' }, size: { type: 'string' }, timeout: { type: 'string' }, dataspace: { type: 'string' } },
  help: {
    description:
      'Checks a deployment end to end with the same configuration as the functions: generates a small random segment, stages it (like ship), announces it, waits until the upload function stored it, restores it into S3_STORAGE_RESTORE_ROOT and compares size and SHA-256, then announces its deletion (carried out after the grace period, S3_STORAGE_DELETION_DELAY_HOURS). Prints each step; exit 0 when all five pass, 1 with the failing step\'s error otherwise.',
    options: {
      staging: 's3://bucket/prefix to stage the segment under (default: in place under S3_STORAGE_SOURCE_ROOT)',
      dir: 'without --staging: where this machine sees S3_STORAGE_SOURCE_ROOT (default: the same path)',
      size: 'bytes of the generated segment, 1..67108864 (default 262144)',
      timeout: 'seconds to wait for the upload, 1..3600 (default 300)',
      dataspace: 'dataspace of the smoke segment (default bucket-storage-smoke)',
    },
    examples: ['bucket-storage smoke --staging s3://logs-staging/smoke'],
  },
  async run(ctx) {
    const runtime = await createRuntime(ctx.env);
    const restoreDir = runtime.config.restoreRoot;
    if (restoreDir === undefined) throw new ConfigError('S3_STORAGE_RESTORE_ROOT', 'S3_STORAGE_RESTORE_ROOT is not set: smoke restores the segment into it (any writable directory on this machine, e.g. /tmp)');
    const stager = stagerFor(ctx.values.staging, runtime.config, runtime.roleStore);
    // The generated file: a temporary directory when staged in S3, else where this machine sees the source root.
    const dir = ctx.values.staging !== undefined ? tmpdir() : typeof ctx.values.dir === 'string' ? ctx.values.dir : (runtime.config.sourceRoot ?? tmpdir());
    await runSmoke(runtime, stager, {
      dataspace: typeof ctx.values.dataspace === 'string' ? validateIdentifier('dataspace', ctx.values.dataspace) : 'bucket-storage-smoke',
      size: wholeNumberOption(ctx, 'size', 1, 64 * 1024 * 1024) ?? 256 * 1024,
      timeoutMs: (wholeNumberOption(ctx, 'timeout', 1, 3600) ?? 300) * 1000,
      dir,
      restoreDir,
      say: (line) => ctx.stdout.write(`${line}\n`),
    });
    return 0;
  },
});
