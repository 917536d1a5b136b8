/** The fetch function (handler driven by the sample events), the restore CLI and restoreAndCheck(). */
import type { Context } from 'aws-lambda';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler } from '../functions/fetch.ts';
import { main } from '../src/cli/main.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import type { FetchInvocation } from '../src/core/messages.ts';
import type { Runtime } from '../src/core/runtime.ts';
import { restoreAndCheck } from '../src/fetch/restoreAndCheck.ts';
import { CURRENT_SECRET, PREVIOUS_SECRET, startHarness, type Harness } from './support/fetchHarness.ts';
import { patternBytes } from './support/sourceData.ts';
import { storeSegment, type StoredSegment } from './support/storeSegment.ts';

const SIZE = 200_000;
let h: Harness;
let runtime: Runtime;
let env: Record<string, string>;
let stored: StoredSegment;

beforeAll(async () => {
  h = await startHarness();
  env = {
    ...h.servers.env(),
    S3_STORAGE_BUCKET: h.bucket.bucket,
    S3_STORAGE_ENCRYPTION_KEY: CURRENT_SECRET,
    S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: PREVIOUS_SECRET,
    S3_STORAGE_RESTORE_ROOT: h.root,
    S3_STORAGE_ACCESSKEY: 'local',
    S3_STORAGE_SECRETKEY: 'local',
  };
  Object.assign(process.env, env); // the handler builds its runtime from process.env at cold start
  runtime = await h.runtime();
  stored = await storeSegment(runtime.store, h.bucket, { dataspace: 'demo', segmentId: 'segment-0001' }, SIZE, 'sample', { key: await deriveKey(CURRENT_SECRET), chunkLog2: 16 });
});
afterAll(async () => h.close());

const lambdaContext = { getRemainingTimeInMillis: () => 60_000 } as Context;
/** Invokes the handler as Lambda does, with the raw event: its parser middleware checks it. */
const invoke = (event: unknown) => handler(event as FetchInvocation, lambdaContext);

async function sampleEvent(name: string): Promise<Record<string, unknown>> {
  const event = JSON.parse(await readFile(new URL(`../events/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
  return { ...event, destination: String(event.destination).replace('file:///tmp/bucket-storage/restore', `file://${h.root}`) };
}

describe('functions/fetch handler', () => {
  it('answers events/fetch-whole.json with the whole segment', async () => {
    const answer = await invoke(await sampleEvent('fetch-whole.json'));
    expect(answer).toEqual({ bucket: h.bucket.bucket, region: h.bucket.region, key: stored.key, size: SIZE, sha256: stored.sha256, bytesWritten: SIZE });
    expect((await readFile(join(h.root, 'segment-0001'))).equals(patternBytes(SIZE, 'sample'))).toBe(true);
  });

  it('answers events/fetch-range.json with the slice', async () => {
    const answer = await invoke(await sampleEvent('fetch-range.json'));
    expect(answer).toMatchObject({ size: SIZE, bytesWritten: 65536 });
    expect((await readFile(join(h.root, 'segment-0001.part'))).equals(patternBytes(SIZE, 'sample').subarray(1024, 66560))).toBe(true);
  });

  it('surfaces typed errors with their name, code and message', async () => {
    await expect(invoke({ dataspace: 'demo', segmentId: 'segment-0001' })).rejects.toMatchObject({
      name: 'InvalidMessageError',
      code: 'INVALID_MESSAGE',
      message: 'fetch invocation: destination is required',
    });
    await expect(invoke({ ...(await sampleEvent('fetch-whole.json')), extra: 1 })).rejects.toMatchObject({ name: 'InvalidMessageError', field: 'extra' });
    await expect(invoke({ ...(await sampleEvent('fetch-whole.json')), segmentId: 'nope' })).rejects.toMatchObject({
      name: 'SegmentNotFoundError',
      code: 'SEGMENT_NOT_FOUND',
      message: expect.stringContaining(`s3://${h.bucket.bucket}`),
    });
  });
});

function collector(tty: boolean) {
  const stream = Object.assign(new PassThrough(), tty ? { isTTY: true } : {});
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

type Io = NonNullable<Parameters<typeof main>[1]>;
const asStdout = (s: PassThrough) => s as unknown as NonNullable<Io['stdout']>;
const asStderr = (s: PassThrough) => s as unknown as NonNullable<Io['stderr']>;

describe('bucket-storage restore', () => {
  it('prints the answer; progress goes to stderr on a terminal only', async () => {
    for (const tty of [true, false]) {
      const out = collector(false);
      const err = collector(tty);
      const to = join(h.root, `cli-${tty}`);
      const status = await main(['restore', '--dataspace', 'demo', '--segment', 'segment-0001', '--to', to], { env, stdout: asStdout(out.stream), stderr: asStderr(err.stream) });
      expect(status).toBe(0);
      expect(JSON.parse(out.text())).toMatchObject({ sha256: stored.sha256, bytesWritten: SIZE });
      if (tty) expect(err.text()).toMatch(/\rrestoring segment-0001: 100\.0%/);
      else expect(err.text()).toBe('');
    }
  });

  it('restores a --range', async () => {
    const out = collector(false);
    const status = await main(['restore', '--dataspace', 'demo', '--segment', 'segment-0001', '--to', `file://${h.root}/cli-range`, '--range', '10-19'], { env, stdout: asStdout(out.stream) });
    expect(status).toBe(0);
    expect(JSON.parse(out.text())).toMatchObject({ bytesWritten: 10 });
  });

  it('fails with one line and a non-zero status', async () => {
    const err = collector(false);
    const bad = await main(['restore', '--dataspace', 'demo', '--segment', 'segment-0001', '--to', `file://${h.root}/x`, '--range', '5'], { env, stderr: asStderr(err.stream) });
    expect(bad).toBe(2);
    const err2 = collector(false);
    const missing = await main(['restore', '--dataspace', 'demo', '--segment', 'missing', '--to', `file://${h.root}/x`], { env, stderr: asStderr(err2.stream) });
    expect(missing).toBe(1);
    expect(err2.text()).toMatch(/^bucket-storage restore: SegmentNotFoundError: segment object \S+ not found in any bucket searched: s3:\/\/fetch-test \(us-east-1\)\n$/);
  });
});

describe('restoreAndCheck', () => {
  it('passes when the bytes match and throws IntegrityError when they do not', async () => {
    const ctx = runtime;
    const invocation = { dataspace: 'demo', segmentId: 'segment-0001', destination: `file://${h.root}/checked` };
    await expect(restoreAndCheck(ctx, invocation, { sha256: stored.sha256, bytes: SIZE })).resolves.toMatchObject({ bytesWritten: SIZE });
    await expect(restoreAndCheck(ctx, invocation, { sha256: '0'.repeat(64), bytes: SIZE })).rejects.toMatchObject({ name: 'IntegrityError', what: 'sha256' });
  });
});
