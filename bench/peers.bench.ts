/**
 * `npm run bench peers`: our deployed functions against the peers, same servers, same run (issue 12).
 *
 * For each server (s3rver on disk, fauxqs in memory; each in its own process) and each segment size
 * (16 MiB, 256 MiB, 1 GiB, 4 GiB), every client uploads the same random file and restores it to a file:
 *   ours      dist/upload and dist/fetch bundles (scripts/build.mjs) in a fresh node started through the
 *             functions' exec wrapper (functions/lambda-node.sh, as Lambda starts them), handler invoked with
 *             an SQS event (announcing size and sha256, as `bucket-storage ship` does) / a fetch invocation,
 *             encryption on (format v1);
 *   aws       `aws s3 cp` (plain, its defaults);   rclone  `rclone copy` through a crypt remote (encrypted);
 *   curl      one sigv4 PUT and GET of the file: the server's own ceiling.
 * Each client is a process under /usr/bin/time: wall MiB/s, CPU seconds per GiB (user+sys, children
 * included) and peak RSS. Every copy is checked (size, SHA-256). Figures are medians of BENCH_REPEAT runs.
 * Beside each transfer, the cores the server process kept busy meanwhile (its /proc CPU time over the wall time):
 * both servers run their JavaScript on one thread, so near 1.0 the server, not the client, set the speed.
 * Prints one table per server and size, ratios and the goals, and writes the JSON, a markdown table and an
 * SVG chart (vega-lite): to docs/bench/ for the full set of sizes, to .bench-tmp/peers/ otherwise.
 *
 * BENCH_CLIENTS may add `ours-lib-storage`: ours with @aws-sdk/lib-storage as the upload writer instead of
 * src/core/multipartUpload.ts (bench/support/libStorageUpload.ts), to compare the two writers in one run.
 * Environment (quick runs): BENCH_SIZES=16,256 (MiB), BENCH_SERVERS=s3rver|fauxqs, BENCH_CLIENTS=ours,aws,
 * BENCH_REPEAT=1, BENCH_OUT=dir, BENCH_CPU_PROF=dir (CPU profiles of our children), BENCH_OURS_ENV='{"S3_STORAGE_…":"…"}'
 * (tuning runs), BENCH_TMP=dir (where files go; default the OS temp dir), BENCH_NODE_IMPORT=module (preloaded
 * into our children: bench/support/bufferWatch.mjs shows where the Buffers peak goes), BENCH_NO_WRAPPER=1 (our
 * children in plain node, without the exec wrapper's flags), BENCH_NODE=path (the node our children run on, e.g.
 * Lambda's major version; the servers, the peers and this harness stay on the node running the bench),
 * BENCH_CLIENT_LIMIT_S=600 (a client still running after this is stopped, its cell reported as failed),
 * BENCH_ANNOUNCE_SHA256=0 (our announcements without the segment's sha256; by default they carry it, as
 * `bucket-storage ship` sends it: the upload then checks it and seals it as bks-digest, and the whole restore
 * answers it without hashing, where without it the restore hashes what it writes), BENCH_WARM=1 (each of our
 * children invokes its handler a second time with the same bytes under another segment id, as a warm Lambda
 * container would, and prints that invocation apart; the tables keep the cold invocation's wall and CPU figures,
 * while the peak RSS is the process's over both invocations, what a warm container holds), BENCH_CLIENT_CPUS=0 (a
 * taskset list: every client runs on those cores and the servers and this harness on the others; with one core,
 * the one vCPU of a Lambda function at up to 1,769 MB: bench/support/cpuPinning.ts), BENCH_LINK_MIBPS=64 (every
 * client reaches the server through a proxy that lets each TCP connection carry at most that many MiB/s each way,
 * as a network path bounds one stream where a local server does not: bench/support/linkProxy.ts; the proxy runs
 * in its own process, with the servers, and the servers' busy cores leave its CPU out).
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';
import { renderChart, type ChartPoint } from './support/chart.ts';
import { bundleChild, REPO } from './support/child.ts';
import { awsClient, checkCopy, curlClient, ourClient, rcloneClient, restoreTarget, type Client, type ClientName, type ClientSetup, type SegmentFile, type Stored, type Transfer } from './support/peers.ts';
import { benchPinning } from './support/cpuPinning.ts';
import { ClientFailed } from './support/measure.ts';
import { linkMiBps, startServer, type BenchServer, type ServerName } from './support/servers.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const FULL_SIZES = [16, 256, 1024, 4096];
const BUCKET = 'bench-peers';
const SECRET = 'bench-peers-secret-0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCD';

const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
const SIZES = list('BENCH_SIZES', FULL_SIZES.join(',')).map(Number);
const SERVERS = list('BENCH_SERVERS', 's3rver,fauxqs') as ServerName[];
const CLIENTS = list('BENCH_CLIENTS', 'ours,aws,rclone,curl') as ClientName[];
/** Run order within a repetition: aws stores the plain copy that curl's GET reads where its PUT is refused. */
const RUN_ORDER: readonly ClientName[] = ['aws', 'curl', 'rclone', 'ours', 'ours-lib-storage'];
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
/** The node our functions run on in this bench. */
const OUR_NODE = process.env.BENCH_NODE || process.execPath;
/** Ours also invoked a second time in the same process (a warm container), reported apart. */
const WARM = process.env.BENCH_WARM === '1';
const FULL =
  FULL_SIZES.every((s) => SIZES.includes(s)) &&
  SERVERS.length === 2 &&
  CLIENTS.length === 4 &&
  !process.env.BENCH_OURS_ENV &&
  process.env.BENCH_NO_WRAPPER !== '1' &&
  process.env.BENCH_ANNOUNCE_SHA256 !== '0' &&
  !WARM &&
  benchPinning === undefined &&
  OUR_NODE === process.execPath;

type Direction = 'upload' | 'restore';

interface RunRecord {
  readonly server: ServerName;
  readonly client: ClientName;
  readonly direction: Direction;
  readonly sizeMiB: number;
  readonly rep: number;
  readonly wallS?: number;
  readonly cpuS?: number;
  /** The two parts of cpuS: user and system CPU seconds. */
  readonly userS?: number;
  readonly sysS?: number;
  readonly maxRssKiB?: number;
  /** Minor page faults of the client process (first touches of fresh memory; /usr/bin/time's %R). */
  readonly minorFaults?: number;
  /** Ours: module init ms and the handler's own CPU seconds (the rest is node start and cold start). */
  readonly initMs?: number;
  readonly handlerCpuS?: number;
  /** Ours: peak of the Buffers' memory (process.memoryUsage().arrayBuffers, MiB): part buffers and garbage. */
  readonly arrayBuffersMiB?: number;
  /** CPU seconds the server process used during the transfer (from its /proc stat, before and after). */
  readonly serverCpuS?: number;
  /** Ours with BENCH_WARM=1: wall and CPU seconds of the second, warm invocation in the same process. */
  readonly warmWallS?: number;
  readonly warmCpuS?: number;
  readonly warmUserS?: number;
  readonly warmSysS?: number;
  readonly warmMinorFaults?: number;
  readonly error?: string;
}

export interface Summary {
  readonly server: ServerName;
  readonly client: ClientName;
  readonly direction: Direction;
  readonly sizeMiB: number;
  readonly runs: number;
  readonly mibps?: number;
  readonly cpuPerGiB?: number;
  readonly rssMiB?: number;
  /** Minor page faults of the client process, thousands (median): fresh memory it touched. */
  readonly kFaults?: number;
  readonly handlerCpuPerGiB?: number;
  /**
   * The server's CPU seconds over the transfer's wall seconds (median of the runs): how many cores it kept busy.
   * Near 1 (one JavaScript thread) the server was the limit of that transfer's speed.
   */
  readonly serverCores?: number;
  /** BENCH_WARM=1, ours: the warm invocation's MiB/s (handler wall time) and CPU s/GiB, medians. */
  readonly warmMibps?: number;
  readonly warmCpuPerGiB?: number;
  readonly warmKFaults?: number;
  /** Why there is no figure (client missing, refused by the server, failed). */
  readonly note?: string;
}

const LABEL: Record<ClientName, string> = { ours: 'ours (encrypted)', 'ours-lib-storage': 'ours, lib-storage', aws: 'aws s3 cp (plain)', rclone: 'rclone crypt', curl: 'curl (1 PUT/GET)' };

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** A random (incompressible) file of `size` bytes: AES-256-CTR keystream, hashed as it is written. */
async function makeSegment(dir: string, sizeMiB: number): Promise<SegmentFile> {
  const path = join(dir, `segment-${sizeMiB}MiB`);
  const size = sizeMiB * MiB;
  const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
  const zeros = Buffer.alloc(4 * MiB);
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  for (let done = 0; done < size; done += zeros.length) {
    const block = cipher.update(zeros.subarray(0, Math.min(zeros.length, size - done)));
    hash.update(block);
    if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { path, size, sha256: hash.digest('hex') };
}

function record(base: Omit<RunRecord, 'wallS' | 'cpuS' | 'userS' | 'sysS' | 'maxRssKiB' | 'minorFaults'>, t: Transfer, serverCpuS: number | undefined): RunRecord {
  const m = t.measured;
  const warm = t.detail?.warm;
  return {
    ...base,
    wallS: m.wallS,
    cpuS: m.userS + m.sysS,
    userS: m.userS,
    sysS: m.sysS,
    maxRssKiB: m.maxRssKiB,
    minorFaults: m.minorFaults,
    initMs: t.detail?.initMs,
    handlerCpuS: t.detail?.handlerCpuS,
    arrayBuffersMiB: t.detail?.memoryPeakMiB?.arrayBuffers,
    // With a warm invocation the server's CPU covers both: no figure rather than a wrong one.
    ...(warm === undefined ? { serverCpuS } : { warmWallS: warm.handlerMs / 1000, warmCpuS: warm.userS + warm.sysS, warmUserS: warm.userS, warmSysS: warm.sysS, warmMinorFaults: warm.minorFaults }),
  };
}

/** `work`'s result and the CPU seconds the server used meanwhile (undefined where /proc cannot be read). */
async function withServerCpu<T>(server: BenchServer, work: () => Promise<T>): Promise<{ result: T; serverCpuS: number | undefined }> {
  const before = server.cpuSeconds();
  const result = await work();
  const after = server.cpuSeconds();
  return { result, serverCpuS: before === undefined || after === undefined ? undefined : after - before };
}

/**
 * One client's upload then restore of `file` on `server`, both checked; its objects are deleted after (the
 * plain copies of aws and curl at the end of the repetition: curl's GET on fauxqs, which refuses its PUT,
 * reads the copy aws stored).
 */
async function runClient(client: Client, server: BenchServer, file: SegmentFile, rep: number, restoreDir: string, plainCopy: { stored?: Stored }): Promise<RunRecord[]> {
  const sizeMiB = file.size / MiB;
  const base = { server: server.name, client: client.name, sizeMiB, rep };
  const out: RunRecord[] = [];
  const id = `seg-${sizeMiB}-${rep}-${client.name}`;
  const refused = client.unsupported(server, file);
  let stored: Stored | undefined;
  let direction: Direction = 'upload';
  try {
    if (refused !== undefined) {
      out.push({ ...base, direction, error: refused });
      if (client.name !== 'curl' || plainCopy.stored === undefined) return out;
    } else {
      const { result: up, serverCpuS } = await withServerCpu(server, () => client.upload(server, file, id));
      stored = up.stored;
      const expected = client.storedSize?.(file.size) ?? file.size;
      if (client.name !== 'rclone') {
        const size = await server.sizeOf(stored.key);
        if (size !== expected) throw new Error(`${client.name} upload stored ${size} bytes, expected ${expected}`);
      }
      out.push(record({ ...base, direction }, up.transfer, serverCpuS));
      if (client.name === 'aws' || client.name === 'curl') plainCopy.stored ??= stored;
    }
    direction = 'restore';
    const target = restoreTarget(restoreDir, client.name, file);
    try {
      const { result: transfer, serverCpuS } = await withServerCpu(server, () => client.download(server, stored ?? plainCopy.stored ?? { id, key: id }, target));
      if (transfer.checked !== true) await checkCopy(target, file.size, file.sha256, `${client.name} restore`);
      out.push(record({ ...base, direction }, transfer, serverCpuS));
    } finally {
      await rm(target, { force: true });
    }
  } catch (err) {
    // A failed client's own words (the end of its stderr), not its command line, which fills the first characters.
    const message = err instanceof ClientFailed ? `exited ${err.code}: ${err.stderr.trim().split('\n').slice(-4).join(' | ')}` : err instanceof Error ? err.message : String(err);
    out.push({ ...base, direction, error: `failed: ${message.slice(0, 300)}` });
    if (direction === 'upload') out.push({ ...base, direction: 'restore', error: 'not run: the upload failed' });
    console.error(`  ${server.name} ${client.name} ${sizeMiB} MiB ${direction}: ${message.slice(0, 500)}`);
  } finally {
    if (stored !== undefined && client.name !== 'aws' && client.name !== 'curl') await server.clear(stored.key);
    if (stored?.warm !== undefined) await server.clear(stored.warm.key);
  }
  return out;
}

function summarize(records: readonly RunRecord[]): Summary[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const k = [r.server, r.client, r.direction, r.sizeMiB].join('|');
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const first = rs[0] as RunRecord;
    const ok = rs.filter((r) => r.error === undefined && r.wallS !== undefined);
    const head = { server: first.server, client: first.client, direction: first.direction, sizeMiB: first.sizeMiB, runs: ok.length };
    if (ok.length === 0) return { ...head, note: rs.find((r) => r.error)?.error ?? 'no run' };
    const gib = first.sizeMiB / 1024;
    const handler = ok.flatMap((r) => (r.handlerCpuS === undefined ? [] : [r.handlerCpuS]));
    const serverCores = ok.flatMap((r) => (r.serverCpuS === undefined || !r.wallS ? [] : [r.serverCpuS / r.wallS]));
    const warm = ok.flatMap((r) => (r.warmWallS === undefined || r.warmCpuS === undefined ? [] : [{ wallS: r.warmWallS, cpuS: r.warmCpuS, faults: r.warmMinorFaults }]));
    const faults = ok.flatMap((r) => (r.minorFaults === undefined ? [] : [r.minorFaults]));
    const warmFaults = warm.flatMap((w) => (w.faults === undefined ? [] : [w.faults]));
    return {
      ...head,
      mibps: first.sizeMiB / median(ok.map((r) => r.wallS ?? 0)),
      cpuPerGiB: median(ok.map((r) => r.cpuS ?? 0)) / gib,
      rssMiB: median(ok.map((r) => r.maxRssKiB ?? 0)) / 1024,
      ...(faults.length > 0 ? { kFaults: median(faults) / 1000 } : {}),
      ...(handler.length > 0 ? { handlerCpuPerGiB: median(handler) / gib } : {}),
      ...(serverCores.length > 0 ? { serverCores: median(serverCores) } : {}),
      ...(warm.length > 0 ? { warmMibps: first.sizeMiB / median(warm.map((w) => w.wallS)), warmCpuPerGiB: median(warm.map((w) => w.cpuS)) / gib } : {}),
      ...(warmFaults.length > 0 ? { warmKFaults: median(warmFaults) / 1000 } : {}),
    };
  });
}

const f = (n: number | undefined, d = 1) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(d));

function find(summaries: readonly Summary[], server: ServerName, client: ClientName, direction: Direction, sizeMiB: number): Summary | undefined {
  return summaries.find((s) => s.server === server && s.client === client && s.direction === direction && s.sizeMiB === sizeMiB);
}

/** ours ÷ peer for a metric (undefined when either is missing). */
function ratio(summaries: readonly Summary[], s: Summary, peer: ClientName, metric: 'mibps' | 'cpuPerGiB'): number | undefined {
  const p = find(summaries, s.server, peer, s.direction, s.sizeMiB)?.[metric];
  const o = s[metric];
  return p === undefined || o === undefined || p === 0 ? undefined : o / p;
}

function printTables(summaries: readonly Summary[]): void {
  for (const server of SERVERS) {
    for (const sizeMiB of SIZES) {
      console.log(`\n${server}, ${sizeMiB} MiB segment (median of ${REPEAT}; CPU = user+sys of the client process and its children)`);
      console.log('client              dir       MiB/s  CPU s/GiB  RSS MiB  k faults  server cores   ×aws MiB/s  ×rclone MiB/s  ×aws CPU  ×rclone CPU');
      for (const client of CLIENTS) {
        for (const direction of ['upload', 'restore'] as const) {
          const s = find(summaries, server, client, direction, sizeMiB);
          if (s === undefined) continue;
          if (s.note !== undefined) {
            console.log(`${LABEL[client].padEnd(19)} ${direction.padEnd(8)} ${s.note}`);
            continue;
          }
          const r = client === 'ours' ? [ratio(summaries, s, 'aws', 'mibps'), ratio(summaries, s, 'rclone', 'mibps'), ratio(summaries, s, 'aws', 'cpuPerGiB'), ratio(summaries, s, 'rclone', 'cpuPerGiB')] : [];
          console.log(
            `${LABEL[client].padEnd(19)} ${direction.padEnd(8)} ${f(s.mibps).padStart(6)} ${f(s.cpuPerGiB, 2).padStart(10)} ${f(s.rssMiB).padStart(8)} ${f(s.kFaults).padStart(9)} ${f(s.serverCores, 2).padStart(13)}` +
              (client === 'ours' ? `   ${f(r[0], 2).padStart(10)} ${f(r[1], 2).padStart(14)} ${f(r[2], 2).padStart(9)} ${f(r[3], 2).padStart(12)}` : ''),
          );
        }
      }
    }
  }
}

/** BENCH_WARM=1: ours cold (a fresh process, as every figure above) beside the same container's next invocation. */
function printWarm(summaries: readonly Summary[]): void {
  const warm = summaries.filter((s) => s.warmCpuPerGiB !== undefined);
  if (warm.length === 0) return;
  console.log(`\nours, cold start (a fresh process) and warm (the same process's next invocation, handler only), median of ${REPEAT}`);
  console.log('server  MiB    dir        cold MiB/s  cold CPU s/GiB   warm MiB/s  warm CPU s/GiB  cold − warm CPU s  k faults cold · warm');
  for (const s of warm) {
    const gib = s.sizeMiB / 1024;
    const fixed = s.cpuPerGiB === undefined || s.warmCpuPerGiB === undefined ? undefined : (s.cpuPerGiB - s.warmCpuPerGiB) * gib;
    console.log(`${s.server.padEnd(7)} ${String(s.sizeMiB).padStart(4)}   ${s.direction.padEnd(8)} ${f(s.mibps).padStart(11)} ${f(s.cpuPerGiB, 2).padStart(15)} ${f(s.warmMibps).padStart(12)} ${f(s.warmCpuPerGiB, 2).padStart(15)} ${f(fixed, 2).padStart(18)} ${`${f(s.kFaults)} · ${f(s.warmKFaults)}`.padStart(21)}`);
  }
}

interface Goal {
  readonly goal: string;
  readonly where: string;
  readonly value: string;
  readonly met: boolean;
  /** Speed goals: the cores the server kept busy during ours and during the peer's transfer. */
  readonly server?: string;
}

/** Goals 1–4 of issue 12, for every measured size from 256 MiB up (RSS: 1 GiB and 4 GiB). */
function goals(summaries: readonly Summary[]): Goal[] {
  const out: Goal[] = [];
  const check = (goal: string, where: string, value: number | undefined, bound: number, atMost: boolean, busy?: { ours: Summary; peer: ClientName }) => {
    const peer = busy === undefined ? undefined : find(summaries, busy.ours.server, busy.peer, busy.ours.direction, busy.ours.sizeMiB);
    const server = busy === undefined ? {} : { server: `server busy ${f(busy.ours.serverCores, 2)} cores during ours, ${f(peer?.serverCores, 2)} during ${busy.peer}` };
    if (value === undefined) out.push({ goal, where, value: 'not measured', met: false, ...server });
    else out.push({ goal, where, value: value.toFixed(2), met: atMost ? value <= bound : value >= bound, ...server });
  };
  for (const server of SERVERS) {
    for (const sizeMiB of SIZES.filter((s) => s >= 256)) {
      const up = find(summaries, server, 'ours', 'upload', sizeMiB);
      const down = find(summaries, server, 'ours', 'restore', sizeMiB);
      const at = `${server} ${sizeMiB} MiB`;
      if (up) {
        check('1 upload CPU ≤ 3.0 s/GiB', at, up.cpuPerGiB, 3.0, true);
        check('1 upload CPU ≤ 0.8× aws', at, ratio(summaries, up, 'aws', 'cpuPerGiB'), 0.8, true);
        const fast = server === 'fauxqs' ? 1.2 : 1.0;
        check(`2 upload ≥ ${fast.toFixed(1)}× aws MiB/s`, at, ratio(summaries, up, 'aws', 'mibps'), fast, false, { ours: up, peer: 'aws' });
        check('2 upload ≥ 1.5× rclone MiB/s', at, ratio(summaries, up, 'rclone', 'mibps'), 1.5, false, { ours: up, peer: 'rclone' });
        if (sizeMiB >= 1024) check('4 upload peak RSS ≤ 160 MiB', at, up.rssMiB, 160, true);
      }
      if (down) {
        check('1 restore CPU ≤ 3.0 s/GiB', at, down.cpuPerGiB, 3.0, true);
        check('1 restore CPU ≤ 1.0× rclone', at, ratio(summaries, down, 'rclone', 'cpuPerGiB'), 1.0, true);
        check('3 restore ≥ 1.2× aws MiB/s', at, ratio(summaries, down, 'aws', 'mibps'), 1.2, false, { ours: down, peer: 'aws' });
        check('3 restore ≥ 1.0× rclone MiB/s', at, ratio(summaries, down, 'rclone', 'mibps'), 1.0, false, { ours: down, peer: 'rclone' });
        if (sizeMiB >= 1024) check('4 restore peak RSS ≤ 160 MiB', at, down.rssMiB, 160, true);
      }
    }
  }
  return out;
}

function markdown(summaries: readonly Summary[], meta: Record<string, string>): string {
  const lines = [
    `Run: \`${meta.command}\`, ${meta.date}, ${meta.machine}; median of ${REPEAT} runs per cell.`,
    '',
    '| server | MiB | client | up MiB/s | up CPU s/GiB | up RSS MiB | restore MiB/s | restore CPU s/GiB | restore RSS MiB |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const server of SERVERS) {
    for (const sizeMiB of SIZES) {
      for (const client of CLIENTS) {
        const up = find(summaries, server, client, 'upload', sizeMiB);
        const down = find(summaries, server, client, 'restore', sizeMiB);
        const cells = (s: Summary | undefined) => (s === undefined ? ['–', '–', '–'] : s.note !== undefined ? [s.note, '', ''] : [f(s.mibps), f(s.cpuPerGiB, 2), f(s.rssMiB, 0)]);
        const name = client === 'ours' ? `**${LABEL[client]}**` : LABEL[client];
        lines.push(`| ${server} | ${sizeMiB} | ${name} | ${[...cells(up), ...cells(down)].join(' | ')} |`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

async function checkSpace(dir: string): Promise<void> {
  const largest = Math.max(...SIZES) * MiB;
  const need = SIZES.reduce((a, s) => a + s * MiB, 0) + 3 * largest + GiB;
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < need) throw new Error(`the peers bench needs ${(need / GiB).toFixed(1)} GiB free in ${dir}; ${(free / GiB).toFixed(1)} GiB are (set BENCH_TMP or BENCH_SIZES)`);
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]?.trim() ?? '';
  } catch {
    return 'missing';
  }
}

/** Not part of a plain `npm run bench` (bench/run.ts): `npm run bench peers` runs it. */
export const onlyWhenNamed = true;

export async function run(): Promise<void> {
  benchPinning?.pinToRest(process.pid);
  if (benchPinning !== undefined) console.log(`clients on core(s) ${benchPinning.client.join(',')}; servers and harness on ${benchPinning.rest.join(',')}`);
  const link = linkMiBps();
  if (link !== undefined) console.log(`each client connection carries at most ${link} MiB/s each way (bench/support/linkProxy.ts)`);
  const root = process.env.BENCH_TMP ?? tmpdir();
  await checkSpace(root);
  const dir = await mkdtemp(join(root, 'bks-bench-peers-'));
  const sourceRoot = join(dir, 'segments');
  const restoreRoot = join(dir, 'restored');
  const scratch = join(dir, 'scratch');
  await Promise.all([sourceRoot, restoreRoot, scratch].map((d) => mkdir(d, { recursive: true })));
  const records: RunRecord[] = [];
  try {
    const { buildAll } = (await import(pathToFileURL(join(REPO, 'scripts/build.mjs')).href)) as { buildAll: (outdir?: string, options?: { functions?: string[]; plugins?: unknown[] }) => Promise<Record<string, number>> };
    const dist = join(dir, 'dist');
    await buildAll(dist);
    const libStorage = CLIENTS.includes('ours-lib-storage') ? join(dir, 'dist-lib-storage') : undefined;
    if (libStorage !== undefined) {
      const writer = join(REPO, 'bench/support/libStorageUpload.ts');
      const plugin = {
        name: 'lib-storage-writer',
        setup(b: { onResolve: (o: { filter: RegExp }, cb: (a: { importer: string }) => { path: string } | undefined) => void }) {
          b.onResolve({ filter: /\/multipartUpload\.ts$/ }, (a) => (a.importer.endsWith('s3Store.ts') ? { path: writer } : undefined));
        },
      };
      await buildAll(libStorage, { functions: ['upload'], plugins: [plugin] });
    }
    const profileDir = process.env.BENCH_CPU_PROF;
    const setup: ClientSetup = {
      scratch,
      sourceRoot,
      restoreRoot,
      bundles: {
        upload: join(dist, 'upload/index.mjs'),
        fetch: join(dist, 'fetch/index.mjs'),
        invoker: await bundleChild(join(REPO, 'bench/support/invokeFunction.ts'), dir),
        ...(libStorage !== undefined ? { uploadLibStorage: join(libStorage, 'upload/index.mjs') } : {}),
      },
      secret: SECRET,
      launcher: process.env.BENCH_NO_WRAPPER === '1' ? [OUR_NODE] : [join(REPO, 'functions/lambda-node.sh'), OUR_NODE],
      nodeFlags: [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(process.env.BENCH_NODE_IMPORT ? [`--import=${process.env.BENCH_NODE_IMPORT}`] : [])],
      ourEnv: process.env.BENCH_OURS_ENV ? (JSON.parse(process.env.BENCH_OURS_ENV) as Record<string, string>) : {},
      warm: WARM,
    };
    const makers: Record<ClientName, () => Promise<Client | string>> = {
      curl: () => curlClient(setup),
      aws: () => awsClient(setup),
      rclone: () => rcloneClient(setup),
      ours: async () => ourClient(setup),
      'ours-lib-storage': async () => ourClient(setup, 'ours-lib-storage'),
    };
    const clients: Client[] = [];
    for (const name of RUN_ORDER.filter((c) => CLIENTS.includes(c))) {
      const made = await makers[name]();
      if (typeof made === 'string') {
        console.log(`${LABEL[name]}: ${made}`);
        for (const server of SERVERS) for (const sizeMiB of SIZES) for (const direction of ['upload', 'restore'] as const) records.push({ server, client: name, direction, sizeMiB, rep: 0, error: made });
      } else clients.push(made);
    }
    for (const sizeMiB of SIZES) {
      const file = await makeSegment(sourceRoot, sizeMiB);
      for (const serverName of SERVERS) {
        const server = await startServer(serverName, dir, BUCKET);
        try {
          for (let rep = 1; rep <= REPEAT; rep++) {
            const plainCopy: { stored?: Stored } = {};
            for (const client of clients) {
              const runs = await runClient(client, server, file, rep, restoreRoot, plainCopy);
              records.push(...runs);
              for (const r of runs) {
                const fig = r.error ?? `${f(sizeMiB / (r.wallS ?? 1))} MiB/s, ${f((r.cpuS ?? 0) / (sizeMiB / 1024), 2)} CPU s/GiB, ${f((r.maxRssKiB ?? 0) / 1024)} MiB RSS${r.arrayBuffersMiB === undefined ? '' : ` (Buffers ${r.arrayBuffersMiB} MiB)`}, ${r.minorFaults ?? '?'} page faults${r.serverCpuS === undefined ? '' : `, server ${f(r.serverCpuS / (r.wallS ?? 1), 2)} cores`}`;
                console.log(`  ${serverName} ${sizeMiB} MiB #${rep} ${client.name} ${r.direction}: ${fig}`);
              }
            }
            // The plain copies (aws, curl) go last: curl's GET on fauxqs reads aws's.
            await server.clear('aws/');
            await server.clear('curl/');
          }
        } finally {
          await server.stop();
          await rm(join(dir, 's3rver-data'), { recursive: true, force: true });
        }
      }
      await rm(file.path, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const summaries = summarize(records);
  printTables(summaries);
  printWarm(summaries);
  const goalRows = goals(summaries);
  console.log('\ngoals of issue 12 (ours, 256 MiB and up)');
  for (const g of goalRows) console.log(`${g.goal.padEnd(32)} ${g.where.padEnd(18)} ${g.value.padStart(12)}   ${(g.met ? 'met' : 'MISSED').padEnd(6)}${g.server === undefined ? '' : `   ${g.server}`}`);

  const date = new Date().toISOString().slice(0, 10);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const meta = {
    command: `${Object.entries({ BENCH_SIZES: process.env.BENCH_SIZES, BENCH_SERVERS: process.env.BENCH_SERVERS, BENCH_CLIENTS: process.env.BENCH_CLIENTS, BENCH_REPEAT: process.env.BENCH_REPEAT, BENCH_OURS_ENV: process.env.BENCH_OURS_ENV, BENCH_ANNOUNCE_SHA256: process.env.BENCH_ANNOUNCE_SHA256, BENCH_NO_WRAPPER: process.env.BENCH_NO_WRAPPER, BENCH_NODE: process.env.BENCH_NODE, BENCH_WARM: process.env.BENCH_WARM, BENCH_CLIENT_CPUS: process.env.BENCH_CLIENT_CPUS, BENCH_LINK_MIBPS: process.env.BENCH_LINK_MIBPS })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v?.includes(' ') || v?.includes('{') ? `'${v}'` : v} `)
      .join('')}npm run bench peers`,
    date,
    machine: `${cpus().length} × ${cpu}, ${(totalmem() / GiB).toFixed(0)} GiB RAM, node ${process.version}${OUR_NODE === process.execPath ? '' : ` (ours on node ${execFileSync(OUR_NODE, ['--version'], { encoding: 'utf8' }).trim()})`}, host ${hostname()}${benchPinning === undefined ? '' : `, clients on core(s) ${benchPinning.client.join(',')} (taskset), servers on ${benchPinning.rest.join(',')}`}`,
    tools: `aws: ${version('aws', ['--version'])}; rclone: ${version('rclone', ['version'])}; curl: ${version('curl', ['--version'])}`,
  };
  const outDir = process.env.BENCH_OUT ?? join(REPO, FULL ? 'docs/bench' : '.bench-tmp/peers');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'peers.json'), `${JSON.stringify({ meta, repeat: REPEAT, summaries, goals: goalRows, records }, null, 1)}\n`);
  await writeFile(join(outDir, 'peers.md'), markdown(summaries, meta));
  const points: ChartPoint[] = summaries.flatMap((s) =>
    s.mibps === undefined || s.cpuPerGiB === undefined || s.rssMiB === undefined
      ? []
      : [{ server: s.server, direction: s.direction, client: LABEL[s.client], sizeMiB: s.sizeMiB, mibps: s.mibps, cpuPerGiB: s.cpuPerGiB, rssMiB: s.rssMiB }],
  );
  await writeFile(join(outDir, 'peers.svg'), await renderChart(points, `bucket-storage vs peers, same servers, same run (${date}, ${cpus().length} cores, median of ${REPEAT})`));
  console.log(`\nwrote ${join(outDir, 'peers.json')}, peers.md and peers.svg (${meta.machine})`);
}
