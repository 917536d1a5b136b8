/**
 * `registry list` and `registry remove BUCKET [--region R] [--force]`: the registry of buckets as an operator
 * sees and edits it. Removal is a conditional write (registryWrites.ts), never of the current bucket, and
 * refused while the bucket still holds segment objects under the key prefix unless --force.
 */
import { readRegistry, registryLocation } from '../../core/bucketRegistry.ts';
import type { Config } from '../../core/config.ts';
import { StorageError } from '../../core/errors.ts';
import { parseSegmentKey } from '../../core/objectKeys.ts';
import { removeRegistryEntry } from '../../core/registryWrites.ts';
import { createRuntime, type Runtime } from '../../core/runtime.ts';
import type { BucketRef, S3Store } from '../../core/s3Store.ts';
import { defineCommand, UsageError, type CommandContext } from '../command.ts';

/** A segment object of this prefix in `ref`, or undefined; a bucket that does not exist holds none. */
async function firstSegment(store: Pick<S3Store, 'list'>, config: Pick<Config, 'keyPrefix'>, ref: BucketRef): Promise<string | undefined> {
  try {
    for await (const page of store.list(ref, config.keyPrefix)) {
      const found = page.find((o) => parseSegmentKey(config.keyPrefix, o.key) !== undefined);
      if (found !== undefined) return found.key;
    }
    return undefined;
  } catch (err) {
    if (err instanceof StorageError && err.httpStatus === 404) return undefined;
    throw err;
  }
}

async function list(runtime: Runtime, ctx: CommandContext): Promise<number> {
  const at = registryLocation(runtime.config);
  const stored = at === undefined ? undefined : await readRegistry(runtime.roleStore, at);
  const { current } = runtime.registry;
  const answer = {
    registry: at === undefined ? null : `s3://${at.state.bucket}/${at.key}`,
    current: { ...current, registered: at === undefined || runtime.registry.currentRegistered !== false },
    buckets: (stored?.doc.buckets ?? []).map((b) => ({ ...b, current: b.bucket === current.bucket && b.region === current.region })),
  };
  ctx.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  return 0;
}

async function remove(runtime: Runtime, ctx: CommandContext): Promise<number> {
  const bucket = ctx.positionals[1];
  if (bucket === undefined || ctx.positionals.length > 2) throw new UsageError('registry remove takes one bucket name');
  const region = typeof ctx.values.region === 'string' ? ctx.values.region : undefined;
  const force = ctx.values.force === true;
  const { config, store } = runtime;
  // The registry is the role's (state bucket); the data bucket is listed with the data credentials.
  const { removed, registry } = await removeRegistryEntry(runtime.roleStore, config, { bucket, region }, async (ref) => {
    let segment: string | undefined;
    try {
      segment = await firstSegment(store, config, ref);
    } catch (err) {
      if (force) return undefined;
      return `s3://${ref.bucket} cannot be listed to check for segments (${err instanceof Error ? err.message : String(err)}); fix access, or pass --force to remove it anyway`;
    }
    if (segment === undefined || force) return undefined;
    return `s3://${ref.bucket} still holds segment objects under the prefix (e.g. ${segment}): restores and cleanup would no longer see them; pass --force to remove it anyway`;
  });
  ctx.stdout.write(`${JSON.stringify({ removed, buckets: registry.buckets }, null, 2)}\n`);
  return 0;
}

export const registryCommand = defineCommand({
  summary: 'lists the registry of buckets, or removes a bucket from it',
  usage: 'registry list | registry remove BUCKET [--region R] [--force]',
  options: { region: { type: 'string' }, force: { type: 'boolean' } },
  help: {
    description:
      'The registry (in S3_STORAGE_STATE_BUCKET) lists every bucket restores search and cleanup deletes from. Only an upload adds a bucket, after proving it exists. `list` prints it as JSON, with the current bucket and whether it is registered yet. `remove` takes a bucket out with a conditional write: never the current bucket, and not while it still holds segment objects under the key prefix unless --force.',
    arguments: { list: 'print the registry', 'remove BUCKET': 'remove BUCKET from the registry' },
    options: { region: 'with remove: the entry\'s region, when the same name is listed in several', force: 'with remove: remove even though segment objects remain (they are no longer restored or cleaned)' },
    examples: ['bucket-storage registry list', 'bucket-storage registry remove logs-2024-typo'],
  },
  async run(ctx) {
    const action = ctx.positionals[0];
    if (action !== 'list' && action !== 'remove') throw new UsageError('registry needs an action: list, or remove BUCKET');
    if (action === 'list' && (ctx.positionals.length > 1 || ctx.values.force !== undefined || ctx.values.region !== undefined)) throw new UsageError('registry list takes no argument');
    const runtime = await createRuntime(ctx.env);
    return action === 'list' ? list(runtime, ctx) : remove(runtime, ctx);
  },
});
