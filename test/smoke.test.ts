/**
 * `bucket-storage smoke` against the embedded servers with `serve` running (issue 16, acceptance 2's command):
 * each of the five steps printed, exit 0, the segment stored and its deletion announced; staged in S3 and in
 * place. Without a running upload function it fails after --timeout with one line saying where to look.
 */
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { createClients } from '../src/core/clients.ts';
import { loadConfig } from '../src/core/config.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { startCli, type CliChild } from './support/cliChild.ts';

let servers: LocalServers;
let segments: QueuePair;
let deletions: QueuePair;
let root: string;
let env: Record<string, string>;
let sqs: SQSClient;
let s3: S3Client;
let serve: CliChild | undefined;

async function smoke(argv: string[], extra: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const code = await main(['smoke', ...argv], { env: { ...env, ...extra }, stdout, stderr });
  return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of ['smoke-data', 'smoke-staging']) servers.createBucket(b);
  segments = servers.createQueue('smoke-segments');
  deletions = servers.createQueue('smoke-deletions');
  root = await mkdtemp(join(tmpdir(), 'bks-smoke-'));
  await Promise.all([mkdir(join(root, 'sources')), mkdir(join(root, 'restores'))]);
  env = {
    ...servers.env(),
    S3_STORAGE_BUCKET: 'smoke-data',
    S3_STORAGE_ENCRYPTION_KEY: 'smoke-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH',
    S3_STORAGE_SEGMENTS_QUEUE_URL: segments.url,
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    S3_STORAGE_SOURCE_ROOT: join(root, 'sources'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'restores'),
    LOG_LEVEL: 'ERROR',
  };
  const clients = createClients(loadConfig(env));
  sqs = clients.sqs;
  s3 = clients.s3();
});
afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.exited;
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('bucket-storage smoke', () => {
  it('without a running upload function: fails after --timeout, naming where to look', async () => {
    const run = await smoke(['--staging', 's3://smoke-staging/smoke', '--timeout', '2', '--size', '1000']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^smoke 1\/5: .*\nsmoke 2\/5: announced it/);
    expect(run.stderr).toMatch(/^bucket-storage smoke: StorageError: the smoke segment was not stored in s3:\/\/smoke-data\/.* within 2 s: check that the upload function runs .*redrive --dry-run/);
    // Drop the announcement so serve below sees only the next ones.
    await sqs.send(new ReceiveMessageCommand({ QueueUrl: segments.url, MaxNumberOfMessages: 10, VisibilityTimeout: 3600 }));
  });

  it('with serve running: five steps, staged in S3 and in place; stored, checked, deletion announced', async () => {
    serve = startCli(['serve', '--cleanup-every', '3600'], { ...process.env, ...env });
    await serve.waitForLine(/^serve: polling/);
    const runs: { argv: string[]; dataspace: string; size: number; extra: Record<string, string>; deletion: string }[] = [
      { argv: ['--staging', 's3://smoke-staging/smoke'], dataspace: 'bucket-storage-smoke', size: 256 * 1024, extra: {}, deletion: 'cleanup marks it on its next run and removes the object 72 h later (S3_STORAGE_DELETION_DELAY_HOURS)' },
      { argv: ['--size', '70000', '--dataspace', 'smoke-in-place'], dataspace: 'smoke-in-place', size: 70000, extra: { S3_STORAGE_DELETION_DELAY_HOURS: '0' }, deletion: 'cleanup removes the object on its next run' },
    ];
    for (const { argv, dataspace, size, extra, deletion } of runs) {
      const run = await smoke(argv, extra);
      expect(run.code, run.stderr).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines.map((l) => l.split(':')[0])).toEqual(['smoke 1/5', 'smoke 2/5', 'smoke 3/5', 'smoke 4/5', 'smoke 5/5', 'smoke']);
      // The segment's name: the dataspace, then smoke-<UTC date and time to the second>-<6 hex digits>.
      const name = `${dataspace}/smoke-\\d{14}-[0-9a-f]{6}`;
      expect(lines[0]).toMatch(new RegExp(`^smoke 1/5: generated ${name} \\(${size} bytes, sha256 [0-9a-f]{16}…\\), staged at `));
      expect(lines[0]).toMatch(argv[0] === '--staging' ? /staged at s3:\/\/smoke-staging\/smoke\/[0-9a-f]{4}\/bks\/bucket-storage-smoke\/smoke-/ : /staged at file:\/\/.*\/sources\/smoke-in-place\/smoke-/);
      expect(lines[1]).toMatch(/^smoke 2\/5: announced it \(message [\w-]+\)$/);
      const waited = /^smoke 3\/5: stored in s3:\/\/smoke-data\/[0-9a-f]{4}\/bks\/[\w-]+\/smoke-[\w-]+ after (\d+\.\d) s$/.exec(lines[2] ?? '');
      expect(waited, lines[2]).not.toBeNull();
      expect(Number(waited?.[1])).toBeLessThan(120); // seconds, within this test's own time limit
      expect(lines[3]).toMatch(new RegExp(`^smoke 4/5: restored it from s3://smoke-data and checked it: ${size} bytes, sha256 matches$`));
      expect(lines[4]).toMatch(new RegExp(`^smoke 5/5: announced its deletion \\(message [\\w-]+\\); ${deletion.replace(/[()]/g, '\\$&')}$`));
      const total = /^smoke: ok in (\d+\.\d) s$/.exec(lines[5] ?? '');
      expect(Number(total?.[1])).toBeGreaterThanOrEqual(Number(waited?.[1]));
      expect(Number(total?.[1])).toBeLessThan(120);
    }
    const stored = (await s3.send(new ListObjectsV2Command({ Bucket: 'smoke-data' }))).Contents ?? [];
    expect(stored.filter((o) => /\/bks\/(bucket-storage-smoke|smoke-in-place)\/smoke-/.test(o.Key ?? ''))).toHaveLength(2);
    const deleted = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: deletions.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }))).Messages ?? [];
    expect(deleted.map((m) => JSON.parse(m.Body ?? '{}').dataspace).sort()).toEqual(['bucket-storage-smoke', 'smoke-in-place']);
    // Nothing left behind locally.
    expect(await readdir(join(root, 'restores'))).toEqual([]);
    expect(await readdir(join(root, 'sources', 'smoke-in-place'))).toEqual([]);
  }, 120_000);
});
