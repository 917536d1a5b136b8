/**
 * `ship --watch DIR | ship FILE… | ship --deleted FILE|-`: the ingestion node's side. Finds complete segment
 * files, stages them (S3 or in place), announces them with size and SHA-256 and records progress in a state
 * file (src/ship/); or announces deletions from a list. Same configuration as every command.
 */
import { createReadStream } from 'node:fs';
import { access, lstat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createClients } from '../../core/clients.ts';
import { loadConfig, type Config } from '../../core/config.ts';
import { LocationError } from '../../core/errors.ts';
import { validateIdentifier } from '../../core/objectKeys.ts';
import { S3Store } from '../../core/s3Store.ts';
import { announceDeletions } from '../../ship/deletions.ts';
import { identityOf, segmentName, type Layout, type SegmentFile } from '../../ship/layout.ts';
import { Shipper, type ShipEvents } from '../../ship/shipper.ts';
import { lockState, ShipState } from '../../ship/shipState.ts';
import { defineCommand, UsageError, wholeNumberOption, type CommandContext } from '../command.ts';
import { ProgressLine } from '../progressLine.ts';
import { stagerFor } from '../stagingOption.ts';

export const STATE_FILE = '.bucket-storage-ship.json';

/** Staging requests are the role's, like the upload function's reads of staged copies. */
function storeFor(config: Config): S3Store {
  const clients = createClients(config);
  return new S3Store((region) => clients.s3AsRole(region));
}

function dataspaceOption(ctx: CommandContext): string | undefined {
  const d = ctx.values.dataspace;
  return typeof d === 'string' ? validateIdentifier('dataspace', d) : undefined;
}

/** stdout: one JSON line per announced segment; stderr: a progress line on a terminal, event lines otherwise. */
function events(ctx: CommandContext): ShipEvents & { done(): void } {
  const progress = new ProgressLine(ctx.stderr);
  const line = (text: string) => (progress.tty ? progress.note(text) : ctx.stderr.write(`ship: ${text}\n`));
  let announced = 0;
  const staging = new Map<string, { bytes: number; size: number }>();
  const show = () => {
    let done = 0;
    let total = 0;
    for (const s of staging.values()) {
      done += s.bytes;
      total += s.size;
    }
    progress.update(`ship: ${announced} announced · ${staging.size} staging ${(done / 1048576).toFixed(1)}/${(total / 1048576).toFixed(1)} MiB`);
  };
  return {
    staging(file) {
      staging.set(file.path, { bytes: 0, size: file.size });
      if (!progress.tty) line(`staging ${segmentName(file.identity)} (${file.size} bytes)`);
      show();
    },
    progress(file, bytes) {
      const s = staging.get(file.path);
      if (s) s.bytes = bytes;
      show();
    },
    announced(file, a) {
      staging.delete(file.path);
      announced++;
      ctx.stdout.write(`${JSON.stringify(a)}\n`);
      show();
    },
    failed(file, error) {
      staging.delete(file.path);
      line(`${segmentName(file.identity)} not announced, tried again later: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    },
    cycle(totals) {
      for (const key of staging.keys()) staging.delete(key);
      progress.update(`ship: ${totals.announced} announced · ${totals.waiting} settling · ${totals.failed} failed`);
    },
    done: () => progress.end(),
  };
}

async function shipFiles(ctx: CommandContext, config: Config, paths: readonly string[]): Promise<number> {
  const dataspace = dataspaceOption(ctx);
  const files: SegmentFile[] = [];
  for (const p of paths) {
    const path = resolve(p);
    const layout: Layout = { root: dataspace === undefined ? dirname(dirname(path)) : dirname(path), dataspace };
    const identity = identityOf(layout, path);
    const info = await lstat(path).catch((err: unknown) => Promise.reject(new LocationError(path, `${path} cannot be read (${err instanceof Error ? err.message : String(err)})`, { cause: err })));
    if (!info.isFile()) throw new LocationError(path, `${path} is not a regular file`);
    files.push({ identity, path, relative: layout.dataspace === undefined ? `${identity.dataspace}/${identity.segmentId}` : identity.segmentId, size: info.size, mtimeMs: info.mtimeMs });
  }
  const ev = events(ctx);
  const totals = await new Shipper({ layout: { root: '/' }, stager: stagerFor(ctx.values.staging, config, storeFor(config)), sqs: createClients(config).sqs, config, settleMs: 0, concurrency: concurrencyOf(ctx), once: true, events: ev }).shipFiles(files);
  ev.done();
  return totals.failed === 0 ? 0 : 1;
}

async function watch(ctx: CommandContext, config: Config, dir: string): Promise<number> {
  const root = resolve(dir);
  const info = await lstat(root).catch(() => undefined);
  if (!info?.isDirectory()) throw new LocationError(root, `--watch ${dir}: not a directory`);
  const statePath = typeof ctx.values.state === 'string' ? resolve(ctx.values.state) : join(root, STATE_FILE);
  const stager = stagerFor(ctx.values.staging, config, storeFor(config));
  const release = await lockState(statePath);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const ev = events(ctx);
  try {
    const state = await ShipState.load(statePath);
    const once = ctx.values.once === true;
    ctx.stderr.write(`ship: ${once ? 'shipping' : 'watching'} ${root} (${state.size} segments already announced), staging ${stager.describe}\n`);
    const totals = await new Shipper({
      layout: { root, dataspace: dataspaceOption(ctx) },
      stager,
      state,
      sqs: createClients(config).sqs,
      config,
      settleMs: (wholeNumberOption(ctx, 'settle', 0, 86_400) ?? 10) * 1000,
      concurrency: concurrencyOf(ctx),
      once,
      signal: controller.signal,
      events: ev,
    }).run();
    ev.done();
    ctx.stderr.write(`ship: ${totals.announced} announced, ${totals.failed} failed, ${totals.waiting} not complete yet\n`);
    return once && totals.failed > 0 ? 1 : 0;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    await release();
  }
}

const concurrencyOf = (ctx: CommandContext): number => wholeNumberOption(ctx, 'concurrency', 1, 16) ?? 2;

export const shipCommand = defineCommand({
  summary: 'ingestion node: announces segment files as they complete (or listed deletions)',
  usage: 'ship --watch DIR [--staging s3://BUCKET/PREFIX] [--settle S] [--once] | ship FILE… | ship --deleted FILE|-',
  options: {
    watch: { type: 'string' },
    staging: { type: 'string' },
    settle: { type: 'string' },
    once: { type: 'boolean' },
    dataspace: { type: 'string' },
    state: { type: 'string' },
    concurrency: { type: 'string' },
    deleted: { type: 'string' },
  },
  help: {
    description:
      'Runs on an ingestion node. --watch DIR finds segment files DIR/<dataspace>/<segmentId> (DIR/<segmentId> with --dataspace), waits until each is complete (unchanged for --settle seconds), stages it (to --staging, or in place on a file system the upload function mounts at S3_STORAGE_SOURCE_ROOT), announces it with its size and SHA-256 and records it in a state file, so a restart neither misses nor repeats one. One JSON line per announced segment on stdout. ship FILE… announces these files now. ship --deleted sends deletion announcements for a list of <dataspace>/<segmentId> lines (cleanup carries them out after the grace period, S3_STORAGE_DELETION_DELAY_HOURS; undelete cancels one until then).',
    arguments: { 'FILE…': 'segment files to announce now (complete ones), named like --watch names them' },
    options: {
      watch: 'the segment directory to watch',
      staging: 's3://bucket/prefix to stage segments under (default: announce them in place, as file:// under S3_STORAGE_SOURCE_ROOT)',
      settle: 'seconds a file must stay unchanged to be complete (default 10)',
      once: 'with --watch: ship what is complete now, then exit (exit 1 if some failed)',
      dataspace: 'every file is a segment of this dataspace (DIR/<segmentId>; --deleted lists bare segment ids)',
      state: `with --watch: the state file (default DIR/${STATE_FILE})`,
      concurrency: 'segments staged at a time, 1..16 (default 2)',
      deleted: 'a file (or - for stdin) of <dataspace>/<segmentId> lines to announce as deleted',
    },
    examples: ['bucket-storage ship --watch /var/lib/logs/segments --staging s3://logs-staging/node-1 --settle 10', 'bucket-storage ship --deleted deleted.txt'],
  },
  async run(ctx) {
    const config = loadConfig(ctx.env);
    const modes = [ctx.values.watch !== undefined, ctx.values.deleted !== undefined, ctx.positionals.length > 0].filter(Boolean).length;
    if (modes !== 1) throw new UsageError('ship needs exactly one of --watch DIR, FILE…, --deleted FILE|-');
    if (typeof ctx.values.deleted === 'string') {
      const file = ctx.values.deleted;
      if (file !== '-') await access(file).catch((err: unknown) => Promise.reject(new LocationError(file, `--deleted ${file} cannot be read (${err instanceof Error ? err.message : String(err)})`, { cause: err })));
      const input = file === '-' ? ctx.stdin : createReadStream(file);
      const totals = await announceDeletions(input, createClients(config).sqs, config, dataspaceOption(ctx));
      for (const p of totals.problems.slice(0, 20)) ctx.stderr.write(`ship: ${p}\n`);
      ctx.stdout.write(`${JSON.stringify({ announced: totals.announced, notAnnounced: totals.problems.length })}\n`);
      return totals.problems.length === 0 ? 0 : 1;
    }
    if (typeof ctx.values.watch === 'string') return watch(ctx, config, ctx.values.watch);
    return shipFiles(ctx, config, ctx.positionals);
  },
});
