/**
 * The ingestion node's shipper (issue 16, acceptance 1), end to end on the embedded servers with `ship` and
 * `serve` as child processes: segments appear in a watched directory while `ship --watch` runs, some still
 * growing; each complete segment is announced exactly once, across two SIGKILLs (one in the middle of staging a
 * large segment) and restarts; the queue then holds exactly one announcement per segment, `serve` stores them
 * all, and every one restores byte for byte. Also: segments announced in place (file://) and by `ship FILE`,
 * deletions announced from a list in batches, a damaged state file and a second shipper refused.
 */
import { ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { createHash } from 'node:crypto';
import { appendFileSync, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { createClients } from '../src/core/clients.ts';
import { loadConfig } from '../src/core/config.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { lockState, ShipState } from '../src/ship/shipState.ts';
import { startCli } from './support/cliChild.ts';
import { patternStream } from './support/sourceData.ts';

let servers: LocalServers;
let segments: QueuePair;
let deletions: QueuePair;
let root: string;
let env: Record<string, string>;
let sqs: SQSClient;

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
const childEnv = () => ({ ...process.env, ...env });

async function cli(argv: string[], extra: Record<string, string> = {}, stdin?: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const input = new PassThrough();
  input.end(stdin ?? '');
  const code = await main(argv, { env: { ...env, ...extra }, stdout, stderr, stdin: input });
  return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

async function writeSegment(path: string, size: number, options: { old?: boolean } = {}) {
  await pipeline(patternStream(size, path), createWriteStream(path));
  if (options.old) await utimes(path, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
}

/** Every message on a queue, received and left to expire (the test reads each once). */
async function allMessages(url: string): Promise<string[]> {
  const bodies: string[] = [];
  for (let empty = 0; empty < 2; ) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 600 }));
    const got = out.Messages ?? [];
    empty = got.length === 0 ? empty + 1 : 0;
    bodies.push(...got.map((m) => m.Body ?? ''));
  }
  return bodies;
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of ['ship-data', 'ship-staging', 'ship-state']) servers.createBucket(b);
  segments = servers.createQueue('ship-segments', { maxReceiveCount: 3 });
  deletions = servers.createQueue('ship-deletions');
  root = await mkdtemp(join(tmpdir(), 'bks-ship-'));
  env = {
    ...servers.env(),
    S3_STORAGE_BUCKET: 'ship-data',
    S3_STORAGE_ENCRYPTION_KEY: 'ship-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH',
    S3_STORAGE_STATE_BUCKET: 'ship-state',
    S3_STORAGE_SEGMENTS_QUEUE_URL: segments.url,
    S3_STORAGE_SEGMENTS_DLQ_URL: segments.dlqUrl,
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    S3_STORAGE_RESTORE_ROOT: join(root, 'restored'),
    LOG_LEVEL: 'ERROR',
  };
  await mkdir(join(root, 'restored'));
  sqs = createClients(loadConfig(env)).sqs;
});
afterAll(async () => {
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('ship --watch', () => {
  it('announces each complete segment exactly once across SIGKILLs and restarts; serve stores them; all restore', async () => {
    const dir = join(root, 'watched');
    await Promise.all(['logs', 'metrics'].map((d) => mkdir(join(dir, d), { recursive: true })));
    const expected = new Map<string, string>();
    const add = async (name: string, size: number, old = false) => {
      await writeSegment(join(dir, name), size, { old });
      expected.set(name, join(dir, name));
    };
    // Already there before the shipper starts: old ones, a fresh one, an empty one; a temporary file that is no segment.
    for (const [i, size] of [1000, 65_536, 1_000_000].entries()) await add(`logs/seg-${i}`, size, true);
    await add('metrics/seg-a', 12_345);
    await add('metrics/empty', 0, true);
    await writeFile(join(dir, 'logs', '.seg-9.tmp'), 'not a segment');
    // Segments still being written, a chunk every 400 ms: more often than --settle 1, seldom enough that a
    // shipper that ignored --settle would stage one between two writes.
    const growing = new Map<string, boolean>();
    const writer = setInterval(() => {
      for (const [name, on] of growing) if (on) appendFileSync(join(dir, name), 'more bytes '.repeat(100));
    }, 400);
    try {
      const args = ['ship', '--watch', dir, '--staging', 's3://ship-staging/node-1', '--settle', '1'];
      const first = startCli(args, childEnv());
      await first.waitForStdoutLines(5);
      expect(first.stdout.map((l) => JSON.parse(l).segmentId).sort()).toEqual(['empty', 'seg-0', 'seg-1', 'seg-2', 'seg-a']);
      for (const name of ['logs/growing-1', 'metrics/growing-2']) {
        await writeFile(join(dir, name), 'start ');
        growing.set(name, true);
      }
      await new Promise((r) => setTimeout(r, 3000));
      expect(first.stdout).toHaveLength(5);
      // A large segment appears; the shipper is killed while it stages it.
      await add('logs/big', 24 * 1024 * 1024);
      await first.waitForLine(/^ship: staging logs\/big/);
      first.child.kill('SIGKILL');
      await first.exited;
      expect(first.stdout).toHaveLength(5);

      // While it is down: one growing segment completes, two new ones appear, the other keeps growing.
      growing.set('logs/growing-1', false);
      expected.set('logs/growing-1', join(dir, 'logs/growing-1'));
      await add('logs/seg-3', 777);
      await add('metrics/seg-b', 200_000);
      const second = startCli(args, childEnv());
      await second.waitForStdoutLines(4, 90_000);
      await new Promise((r) => setTimeout(r, 1500));
      expect(second.stdout.map((l) => JSON.parse(l).segmentId).sort()).toEqual(['big', 'growing-1', 'seg-3', 'seg-b']);
      growing.set('metrics/growing-2', false);
      expected.set('metrics/growing-2', join(dir, 'metrics/growing-2'));
      await second.waitForStdoutLines(5);
      second.child.kill('SIGKILL');
      await second.exited;

      // A restart finds nothing left to announce.
      const third = startCli([...args, '--once'], childEnv());
      expect(await third.exited).toBe(0);
      expect(third.stdout).toEqual([]);
      expect(third.stderr.at(-1)).toBe('ship: 0 announced, 0 failed, 0 not complete yet');

      const announced = [...first.stdout, ...second.stdout].map((l) => JSON.parse(l) as { dataspace: string; segmentId: string; source: string; size: number; sha256: string });
      expect(announced.map((a) => `${a.dataspace}/${a.segmentId}`).sort()).toEqual([...expected.keys()].sort());
      for (const a of announced) {
        const path = expected.get(`${a.dataspace}/${a.segmentId}`)!;
        expect(a.sha256).toBe(await sha256(path));
        expect(a.source).toMatch(/^s3:\/\/ship-staging\/node-1\/[0-9a-f]{4}\/bks\//);
      }
    } finally {
      clearInterval(writer);
    }

    // The queue holds exactly one announcement per segment; serve stores every one of them.
    const serve = startCli(['serve', '--until-idle', '2', '--batch-size', '10'], childEnv());
    expect(await serve.exited).toBe(0);
    expect(JSON.parse(serve.stdout.at(-1)!)).toEqual({ received: expected.size, failed: 0 });
    for (const [name, path] of expected) {
      const [dataspace, segment] = name.split('/') as [string, string];
      const to = join(root, 'restored', `${dataspace}-${segment}`);
      const restored = await cli(['restore', '--dataspace', dataspace, '--segment', segment, '--to', to]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(await sha256(to)).toBe(await sha256(path));
    }
  }, 240_000);

  it('in place (file:// under S3_STORAGE_SOURCE_ROOT) with --dataspace, and ship FILE, are stored by serve', async () => {
    const dir = join(root, 'in-place');
    await mkdir(dir);
    await writeSegment(join(dir, 'p-1'), 5000, { old: true });
    await writeSegment(join(dir, 'p-2'), 70_000, { old: true });
    const inPlace = { S3_STORAGE_SOURCE_ROOT: dir };
    const once = await cli(['ship', '--watch', dir, '--dataspace', 'placed', '--once'], inPlace);
    expect(once.code, once.stderr).toBe(0);
    const lines = once.stdout.trim().split('\n').map((l) => JSON.parse(l) as { source: string });
    expect(lines.map((l) => l.source).sort()).toEqual([`file://${dir}/p-1`, `file://${dir}/p-2`]);
    await writeSegment(join(dir, 'p-3'), 10);
    const now = await cli(['ship', '--dataspace', 'placed', join(dir, 'p-3')], inPlace);
    expect(JSON.parse(now.stdout)).toMatchObject({ dataspace: 'placed', segmentId: 'p-3', source: `file://${dir}/p-3`, size: 10 });
    await writeFile(join(dir, '.p-4.tmp'), 'x');
    expect((await cli(['ship', '--dataspace', 'placed', join(dir, '.p-4.tmp')], inPlace)).stderr).toMatch(/LocationError: .*\.p-4\.tmp is not a segment file of the form .*<segmentId> \(dataspace placed\): the name .* does not start with a letter or digit/);
    // Without S3_STORAGE_SOURCE_ROOT or --staging, nothing can be announced in place.
    expect((await cli(['ship', '--watch', dir, '--dataspace', 'placed', '--once'])).stderr).toMatch(/ConfigError: without --staging.*S3_STORAGE_SOURCE_ROOT/);

    const serve = startCli(['serve', '--until-idle', '2'], { ...childEnv(), ...inPlace });
    expect(await serve.exited).toBe(0);
    expect(JSON.parse(serve.stdout.at(-1)!)).toEqual({ received: 3, failed: 0 });
    const restored = await cli(['restore', '--dataspace', 'placed', '--segment', 'p-2', '--to', join(root, 'restored', 'p-2')]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await sha256(join(root, 'restored', 'p-2'))).toBe(await sha256(join(dir, 'p-2')));
  }, 120_000);

  it('a damaged state file stops the shipper (never reset); a second shipper on the same state is refused', async () => {
    const dir = join(root, 'guarded');
    await mkdir(dir);
    await writeFile(join(dir, '.bucket-storage-ship.json'), '{"version":1,"shipped":{"a/b":{"size":"x"}}}');
    const damaged = await cli(['ship', '--watch', dir, '--once'], { S3_STORAGE_SOURCE_ROOT: dir });
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/ShipStateError: ship state .* is damaged.*never reset automatically/);
    const statePath = join(dir, 'other-state.json');
    const release = await lockState(statePath);
    try {
      // This process holds the lock, as a running shipper would.
      const child = startCli(['ship', '--watch', dir, '--once', '--state', statePath], { ...childEnv(), S3_STORAGE_SOURCE_ROOT: dir });
      expect(await child.exited).toBe(1);
      expect(child.stderr.join('\n')).toMatch(new RegExp(`another bucket-storage ship \\(pid ${process.pid}\\) uses`));
    } finally {
      await release();
    }
    expect((await ShipState.load(statePath)).size).toBe(0);
  }, 60_000);
});

describe('ship --deleted', () => {
  it('announces a list in batches of 10; bad lines are reported, the rest sent', async () => {
    const list = [...Array.from({ length: 23 }, (_, i) => `logs/seg-${i}`), '', '# a comment', 'no-slash', 'logs/bad id'].join('\n');
    const run = await cli(['ship', '--deleted', '-'], {}, list);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({ announced: 23, notAnnounced: 2 });
    expect(run.stderr).toMatch(/line 26: expected <dataspace>\/<segmentId>/);
    expect(run.stderr).toMatch(/line 27: deletion announcement: segmentId "bad id"/);
    const bodies = (await allMessages(deletions.url)).map((b) => JSON.parse(b) as { segmentId: string });
    expect(bodies.map((b) => b.segmentId).sort()).toEqual(Array.from({ length: 23 }, (_, i) => `seg-${i}`).sort());
    const missing = await cli(['ship', '--deleted', join(root, 'no-such-list')]);
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/^bucket-storage ship: LocationError: --deleted .*no-such-list cannot be read/)]);
    const bare = await cli(['ship', '--deleted', '-', '--dataspace', 'logs'], {}, 'seg-x\nseg-y\n');
    expect([bare.code, JSON.parse(bare.stdout)]).toEqual([0, { announced: 2, notAnnounced: 0 }]);
  }, 60_000);
});
