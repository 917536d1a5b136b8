/**
 * The clients the peers bench compares, each a process measured by measure.ts, all against the same server:
 *   curl    one sigv4 PUT / GET of the file (UNSIGNED-PAYLOAD): the server's own ceiling, no client work;
 *   aws     `aws s3 cp` (aws-cli, Python) with its defaults, plain bytes;
 *   rclone  `rclone copy` through a crypt remote (encrypted, its defaults);
 *   ours    the deployed bundles (dist/upload, dist/fetch) invoked in a fresh node (invokeFunction.ts).
 * Each uploads the file under its own key and restores that object to a file; the bench checks every copy.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ciphertextSize, DEFAULT_CHUNK_LOG2 } from '../../src/core/format/index.ts';
import { formatSegmentKey } from '../../src/core/objectKeys.ts';
import { sqsRecord } from '../../src/local/lambdaEvents.ts';
import { available, cleanEnv, measure, type Measured } from './measure.ts';
import type { BenchServer } from './servers.ts';

/** `ours-lib-storage`: ours with @aws-sdk/lib-storage as the upload writer (libStorageUpload.ts), on request only. */
export type ClientName = 'curl' | 'aws' | 'rclone' | 'ours' | 'ours-lib-storage';

export interface Transfer {
  readonly measured: Measured;
  /** Ours only: what the child reported of itself (module init, handler CPU). */
  readonly detail?: ChildReport;
  /** A restore whose copy the client already checked and removed (ours with BENCH_WARM=1): the bench does not. */
  readonly checked?: boolean;
}

export interface ChildReport {
  readonly initMs: number;
  readonly handlerMs: number;
  readonly handlerCpuS: number;
  readonly maxRssKiB: number;
  /** Peaks of process.memoryUsage() (rss, heapUsed, external, arrayBuffers, …), MiB. */
  readonly memoryPeakMiB?: Readonly<Record<string, number>>;
  readonly answer: unknown;
  /** BENCH_WARM=1: the second invocation in the same process (a warm container), alone. */
  readonly warm?: WarmReport;
}

export interface WarmReport {
  readonly handlerMs: number;
  readonly userS: number;
  readonly sysS: number;
  readonly minorFaults: number;
  readonly answer: unknown;
}

/** A segment file of the bench: its path, size and SHA-256. */
export interface SegmentFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** What a client stored: the run's id (rclone and ours name their objects by it) and the object's key (or the
 *  prefix of rclone's encrypted names). */
export interface Stored {
  readonly id: string;
  readonly key: string;
  /** BENCH_WARM=1, ours: the second copy its warm invocation stored (same bytes, segment `<id>-warm`). */
  readonly warm?: { readonly id: string; readonly key: string; readonly size: number; readonly sha256: string };
}

export interface Client {
  readonly name: ClientName;
  /** Why this client cannot upload `file` to `server`, or undefined when it can. */
  unsupported(server: BenchServer, file: SegmentFile): string | undefined;
  /** Stores `file` under the run's `id`. */
  upload(server: BenchServer, file: SegmentFile, id: string): Promise<{ transfer: Transfer; stored: Stored }>;
  /** Restores what `upload` stored to the file `target`. */
  download(server: BenchServer, stored: Stored, target: string): Promise<Transfer>;
  /** Bytes the server holds for a file of `size` bytes, when the client stores other than the plain bytes. */
  storedSize?(size: number): number;
}

export interface ClientSetup {
  /** Scratch directory of the bench (configuration files, /usr/bin/time output). */
  readonly scratch: string;
  /** The directory segment files live in (S3_STORAGE_SOURCE_ROOT) and the one restores write to. */
  readonly sourceRoot: string;
  readonly restoreRoot: string;
  /** dist/ of the deployed bundles and the bundled invokeFunction child. */
  readonly bundles: { readonly upload: string; readonly fetch: string; readonly invoker: string; readonly uploadLibStorage?: string };
  /** Encryption secret of our functions. */
  readonly secret: string;
  /** How our children's node starts: the functions' exec wrapper and node (as Lambda starts them), or node alone. */
  readonly launcher: readonly [string, ...string[]];
  /** Extra node flags for our children (e.g. --cpu-prof). */
  readonly nodeFlags: readonly string[];
  /** Extra configuration of our functions (tuning runs), S3_STORAGE_* variables. */
  readonly ourEnv: Record<string, string>;
  /**
   * BENCH_WARM=1: each of our children invokes its handler a second time, with the same bytes under another
   * segment id, as a warm container would; that invocation is reported apart (ChildReport.warm) and taken out of
   * the process's wall and CPU figures, which stay those of the cold invocation (its peak RSS covers both).
   */
  readonly warm?: boolean;
}

const PREFIX = { curl: 'curl/', aws: 'aws/', rclone: 'rclone/' } as const;

/** The `aws` executable itself: pyenv's shim costs a bash and a pyenv process per call, which no user of a real install pays. */
function awsExecutable(): string {
  try {
    return execFileSync('pyenv', ['which', 'aws'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || 'aws';
  } catch {
    return 'aws';
  }
}

export async function curlClient(setup: ClientSetup): Promise<Client | string> {
  if (!(await available('curl', ['--version']))) return 'missing: curl is not installed';
  const args = (server: BenchServer) => ['-sS', '-f', '--aws-sigv4', `aws:amz:${server.region}:s3`, '--user', `${server.accessKey}:${server.secretKey}`, '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD'];
  const url = (server: BenchServer, key: string) => `${server.endpoint}/${server.bucket}/${key}`;
  return {
    name: 'curl',
    unsupported: (server, file) => (server.maxBody !== undefined && file.size > server.maxBody ? `${server.name} refuses request bodies over ${server.maxBody / 2 ** 20} MiB (one PUT)` : undefined),
    async upload(server, file, id) {
      const key = `${PREFIX.curl}${id}`;
      const measured = await measure('curl', [...args(server), '-T', file.path, url(server, key)], cleanEnv({}), setup.scratch);
      return { transfer: { measured }, stored: { id, key } };
    },
    async download(server, stored, target) {
      return { measured: await measure('curl', [...args(server), '-o', target, url(server, stored.key)], cleanEnv({}), setup.scratch) };
    },
  };
}

export async function awsClient(setup: ClientSetup): Promise<Client | string> {
  const aws = awsExecutable();
  if (!(await available(aws, ['--version']))) return 'missing: aws-cli is not installed (pip install awscli)';
  // No user configuration: the CLI's defaults (8 MiB parts, 10 requests in flight), as a new user gets them.
  const empty = join(setup.scratch, 'aws-empty-config');
  await writeFile(empty, '');
  const env = (server: BenchServer) =>
    cleanEnv({ AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey, AWS_DEFAULT_REGION: server.region, AWS_CONFIG_FILE: empty, AWS_SHARED_CREDENTIALS_FILE: empty });
  const common = (server: BenchServer) => ['--endpoint-url', server.endpoint, '--region', server.region, '--only-show-errors'];
  return {
    name: 'aws',
    unsupported: () => undefined,
    async upload(server, file, id) {
      const key = `${PREFIX.aws}${id}`;
      const measured = await measure(aws, ['s3', 'cp', file.path, `s3://${server.bucket}/${key}`, ...common(server)], env(server), setup.scratch);
      return { transfer: { measured }, stored: { id, key } };
    },
    async download(server, stored, target) {
      return { measured: await measure(aws, ['s3', 'cp', `s3://${server.bucket}/${stored.key}`, target, ...common(server)], env(server), setup.scratch) };
    },
  };
}

export async function rcloneClient(setup: ClientSetup): Promise<Client | string> {
  if (!(await available('rclone', ['version']))) return 'missing: rclone is not installed (apt-get install rclone)';
  const obscure = (s: string) => execFileSync('rclone', ['obscure', s], { encoding: 'utf8' }).trim();
  const password = obscure('bench-rclone-password');
  const salt = obscure('bench-rclone-salt');
  const configFor = async (server: BenchServer) => {
    const file = join(setup.scratch, `rclone-${server.name}.conf`);
    await writeFile(
      file,
      [
        '[s3]',
        'type = s3',
        'provider = Other',
        `access_key_id = ${server.accessKey}`,
        `secret_access_key = ${server.secretKey}`,
        `endpoint = ${server.endpoint}`,
        `region = ${server.region}`,
        'force_path_style = true',
        // fauxqs refuses request bodies over ~11 MiB: parts (and single PUTs) of 8 MiB there, as ours.
        ...(server.maxBody !== undefined ? ['upload_cutoff = 8Mi', 'chunk_size = 8Mi'] : []),
        '',
        '[secret]',
        'type = crypt',
        `remote = s3:${server.bucket}/${PREFIX.rclone.slice(0, -1)}`,
        `password = ${password}`,
        `password2 = ${salt}`,
        '',
      ].join('\n'),
    );
    return file;
  };
  return {
    name: 'rclone',
    unsupported: () => undefined,
    async upload(server, file, id) {
      // rclone copy keeps the file's name: copy it under the run's id by a hard link named so.
      const dir = join(setup.scratch, `rclone-up-${id}`);
      await mkdir(dir, { recursive: true });
      const linked = join(dir, id);
      await rm(linked, { force: true });
      execFileSync('ln', [file.path, linked]);
      try {
        const measured = await measure('rclone', ['--config', await configFor(server), 'copy', linked, 'secret:'], cleanEnv({}), setup.scratch);
        return { transfer: { measured }, stored: { id, key: PREFIX.rclone } };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    async download(server, { id }, target) {
      const dir = join(setup.scratch, `rclone-down-${id}`);
      await mkdir(dir, { recursive: true });
      try {
        const measured = await measure('rclone', ['--config', await configFor(server), 'copy', `secret:${id}`, dir], cleanEnv({}), setup.scratch);
        await rename(join(dir, id), target);
        return { measured };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export function ourEnv(setup: ClientSetup, server: BenchServer): Record<string, string> {
  return {
    S3_STORAGE_BUCKET: server.bucket,
    S3_STORAGE_REGION: server.region,
    AWS_REGION: server.region,
    S3_STORAGE_ENCRYPTION_KEY: setup.secret,
    S3_STORAGE_ENDPOINT_BASE: server.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_ACCESSKEY: server.accessKey,
    S3_STORAGE_SECRETKEY: server.secretKey,
    S3_STORAGE_SOURCE_ROOT: setup.sourceRoot,
    S3_STORAGE_RESTORE_ROOT: setup.restoreRoot,
    // fauxqs refuses request bodies over ~11 MiB: 8 MiB parts there (the tests' setting too).
    ...(server.maxBody !== undefined ? { S3_STORAGE_PART_SIZE_MIB: '8' } : {}),
    ...setup.ourEnv,
  };
}

export const DATASPACE = 'bench';

export function ourClient(setup: ClientSetup, name: 'ours' | 'ours-lib-storage' = 'ours'): Client {
  const uploadBundle = name === 'ours' ? setup.bundles.upload : setup.bundles.uploadLibStorage;
  if (uploadBundle === undefined) throw new Error(`${name}: no upload bundle was built`);
  const invoke = async (server: BenchServer, kind: 'upload' | 'fetch', event: unknown, warmEvent?: unknown, between?: () => Promise<void>): Promise<Transfer> => {
    const bundle = kind === 'upload' ? uploadBundle : setup.bundles.fetch;
    const [command, ...launch] = setup.launcher;
    const args = [...launch, ...setup.nodeFlags, setup.bundles.invoker, kind, bundle, JSON.stringify(event), ...(warmEvent === undefined ? [] : [JSON.stringify(warmEvent)])];
    // With a warm invocation the child waits between the two (invokeFunction.ts): for `between`, or for nothing.
    const measured = await measure(command, args, cleanEnv(ourEnv(setup, server)), setup.scratch, warmEvent === undefined ? {} : { between: between ?? (async () => undefined) });
    const last = measured.stdout.trim().split('\n').pop() ?? '';
    const parsed = JSON.parse(last) as { bench?: ChildReport };
    if (parsed.bench === undefined) throw new Error(`our ${kind} child printed no report: ${last.slice(0, 300)}`);
    const warm = parsed.bench.warm;
    if (warmEvent !== undefined && warm === undefined) throw new Error(`our ${kind} child reported no warm invocation`);
    // The process's figures without the warm invocation: those of one cold start, as without BENCH_WARM.
    const cold = warm === undefined ? measured : { ...measured, wallS: measured.wallS - warm.handlerMs / 1000, userS: measured.userS - warm.userS, sysS: measured.sysS - warm.sysS, minorFaults: measured.minorFaults - warm.minorFaults };
    return { measured: cold, detail: parsed.bench };
  };
  return {
    name,
    unsupported: () => undefined,
    // Format v1 unless a tuning run turns encryption off (the plain bytes then).
    storedSize: (size) => ((setup.ourEnv.S3_STORAGE_ENCRYPTION_KEY ?? setup.secret) === 'off' ? size : ciphertextSize(size, DEFAULT_CHUNK_LOG2)),
    async upload(server, file, id) {
      // With the segment's size and sha256, as `bucket-storage ship` announces every segment (src/ship/shipper.ts):
      // the upload checks the digest and seals it as bks-digest, and the whole restore answers it without hashing.
      // BENCH_ANNOUNCE_SHA256=0 leaves it out (an announcer that sends no digest: the restore then hashes).
      const event = (segmentId: string) => {
        const announcement = { version: 1, dataspace: DATASPACE, segmentId, source: `file://${file.path}`, size: file.size, ...(process.env.BENCH_ANNOUNCE_SHA256 === '0' ? {} : { sha256: file.sha256 }) };
        return { Records: [sqsRecord({ messageId: `bench-${segmentId}`, body: JSON.stringify(announcement) }, 'https://sqs.us-east-1.amazonaws.com/000000000000/segments', server.region)] };
      };
      const keyOf = (segmentId: string) => formatSegmentKey('', { dataspace: DATASPACE, segmentId });
      const warmId = `${id}-warm`;
      let transfer: Transfer;
      try {
        transfer = await invoke(server, 'upload', event(id), setup.warm === true ? event(warmId) : undefined);
      } catch (err) {
        // The bench deletes only what a finished upload stored: a failed child may have stored the cold copy.
        await server.clear(keyOf(id));
        if (setup.warm === true) await server.clear(keyOf(warmId));
        throw err;
      }
      const warm = setup.warm === true ? { id: warmId, key: keyOf(warmId), size: file.size, sha256: file.sha256 } : undefined;
      return { transfer, stored: { id, key: keyOf(id), ...(warm === undefined ? {} : { warm }) } };
    },
    async download(server, { id, warm }, target) {
      const event = (segmentId: string, path: string) => ({ dataspace: DATASPACE, segmentId, destination: `file://${path}` });
      const warmTarget = `${target}-warm`;
      try {
        // With a warm invocation the cold copy is checked (the same bytes as the warm one) and removed before the
        // warm restore starts, so that both restores write into the page cache as it was: a GiB file left in
        // place keeps the pages the next restore's writes would have reused (docs/DEVELOPMENT.md, "Fresh memory").
        const between = warm === undefined ? undefined : async () => {
          await checkCopy(target, warm.size, warm.sha256, 'our restore (cold)');
          await rm(target, { force: true });
        };
        const transfer = await invoke(server, 'fetch', event(id, target), warm === undefined ? undefined : event(warm.id, warmTarget), between);
        const answer = transfer.detail?.answer;
        if (typeof answer !== 'object' || answer === null || !('sha256' in answer)) throw new Error(`our fetch answered ${JSON.stringify(answer)}`);
        if (warm !== undefined) await checkCopy(warmTarget, warm.size, warm.sha256, 'our warm restore');
        return { ...transfer, checked: warm !== undefined };
      } finally {
        if (warm !== undefined) await rm(warmTarget, { force: true });
      }
    },
  };
}

/** Throws unless the file at `path` has `size` bytes whose SHA-256 is `sha256`. */
export async function checkCopy(path: string, size: number, sha256: string, who: string): Promise<void> {
  const actual = (await stat(path)).size;
  if (actual !== size) throw new Error(`${who}: restored ${actual} bytes, expected ${size}`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 2 ** 20 })) hash.update(chunk as Buffer);
  if (hash.digest('hex') !== sha256) throw new Error(`${who}: restored bytes differ from the segment`);
}

/** The file name a restore target gets in `dir`. */
export function restoreTarget(dir: string, client: ClientName, file: SegmentFile): string {
  return join(dir, `${client}-${basename(file.path)}`);
}
