/**
 * The sample SQS events of events/ through `bucket-storage invoke upload --event FILE` (a child process, as an
 * operator runs it): the good one stores its segment, the malformed and missing-source ones are reported failed.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';

const run = promisify(execFile);
const SAMPLES = '/tmp/bucket-storage-samples';
let servers: LocalServers;
let env: Record<string, string>;

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket('events-test');
  await mkdir(SAMPLES, { recursive: true });
  await writeFile(`${SAMPLES}/sample-segment-1`, 'hello world');
  env = { ...process.env, ...servers.env(), S3_STORAGE_BUCKET: 'events-test', S3_STORAGE_ENCRYPTION_KEY: 'sample-secret-for-events-test-0123456789', S3_STORAGE_SOURCE_ROOT: SAMPLES } as Record<string, string>;
});
afterAll(async () => {
  await servers?.stop();
  await rm(`${SAMPLES}/sample-segment-1`, { force: true });
});

async function invoke(event: string): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  const { stdout } = await run(process.execPath, ['bin/bucket-storage.mjs', 'invoke', 'upload', '--event', `events/${event}.json`], { env });
  return JSON.parse(stdout) as { batchItemFailures: { itemIdentifier: string }[] };
}

describe('sample upload events', () => {
  it('upload-good stores the segment', async () => {
    expect(await invoke('upload-good')).toEqual({ batchItemFailures: [] });
    const key = (await run(process.execPath, ['bin/bucket-storage.mjs', 'key', '--dataspace', 'demo', '--segment', 'sample-segment-1'], { env })).stdout.trim();
    const res = await fetch(`${servers.endpoint}/events-test/${key}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
  });
  it('upload-malformed is reported failed by its messageId', async () => {
    expect(await invoke('upload-malformed')).toEqual({ batchItemFailures: [{ itemIdentifier: '22222222-0000-0000-0000-000000000002' }] });
  });
  it('upload-missing-source is reported failed by its messageId', async () => {
    expect(await invoke('upload-missing-source')).toEqual({ batchItemFailures: [{ itemIdentifier: '33333333-0000-0000-0000-000000000003' }] });
  });
});
