/**
 * The shipper's cycle (src/ship/shipper.ts) in the test process, on a real segment directory and state file,
 * with a fake stager, a fake SQS and a clock of its own: groups of ten, oldest first, staged a few at a time;
 * what is recorded and when; files still changing, announcements refused, back-off and its end; entries of
 * vanished segments dropped. test/ship.test.ts runs `ship` in child processes, out of the mutation run's
 * reach: written for the survivors of the run `ship` (docs/MUTATION.md).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { mkdir, mkdtemp, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Shipper } from '../src/ship/shipper.ts';
import { ShipState } from '../src/ship/shipState.ts';
import type { SegmentFile } from '../src/ship/layout.ts';
import type { Staged, Stager } from '../src/ship/stage.ts';

const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments';
const CONFIG = { segmentsQueueUrl: QUEUE_URL, deletionsQueueUrl: undefined };
const SETTLE_MS = 10_000;
/** The files' mtime, in seconds: old enough for any clock below. */
const BASE_S = 1_700_000_000;

let dir: string;
let root: string;
let statePath: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bks-shipper-'));
  root = join(dir, 'segments');
  statePath = join(dir, 'state.json');
  await mkdir(join(root, 'logs'), { recursive: true });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** Writes logs/<name> with mtime BASE_S + `age` seconds (older files first in a cycle). */
async function segment(name: string, mtimeS: number): Promise<void> {
  const path = join(root, 'logs', name);
  await writeFile(path, name);
  await utimes(path, mtimeS, mtimeS);
}

/** A stager that records the files it stages, how many at once, and fails those `failing` names. */
function fakeStager(failing: (file: SegmentFile) => boolean = () => false) {
  let inFlight = 0;
  const seen = { staged: [] as string[], maxInFlight: 0 };
  const stager: Stager = {
    describe: 'fake',
    async stage(file, options) {
      seen.staged.push(file.identity.segmentId);
      seen.maxInFlight = Math.max(seen.maxInFlight, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      options?.onProgress?.(file.size);
      if (failing(file)) throw new Error(`cannot stage ${file.identity.segmentId}`);
      return { source: `s3://staging/${file.relative}`, size: file.size, sha256: 'a'.repeat(64) } satisfies Staged;
    },
  };
  return { stager, seen };
}

/** An SQS client taking every announcement but those whose segment `refuse` names (or failing whole with `error`). */
function fakeSqs(refuse: (segmentId: string) => boolean = () => false, error?: Error) {
  const batches: string[][] = [];
  const client = {
    async send(command: { input: { Entries?: { Id: string; MessageBody: string }[] } }) {
      if (error) throw error;
      const entries = command.input.Entries ?? [];
      batches.push(entries.map((e) => (JSON.parse(e.MessageBody) as { segmentId: string }).segmentId));
      const refused = (e: { MessageBody: string }) => refuse((JSON.parse(e.MessageBody) as { segmentId: string }).segmentId);
      return {
        Successful: entries.filter((e) => !refused(e)).map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })),
        Failed: entries.filter(refused).map((e) => ({ Id: e.Id, Code: 'InvalidParameterValue', Message: 'refused', SenderFault: true })),
      };
    },
  };
  return { sqs: client as unknown as SQSClient, batches };
}

function shipper(options: { stager: Stager; sqs: SQSClient; state?: ShipState; now: () => number; concurrency?: number }) {
  const events: string[] = [];
  const failures: string[] = [];
  const progress: [string, number][] = [];
  const s = new Shipper({
    layout: { root },
    stager: options.stager,
    state: options.state,
    sqs: options.sqs,
    config: CONFIG,
    settleMs: SETTLE_MS,
    concurrency: options.concurrency ?? 2,
    once: true,
    now: options.now,
    events: {
      staging: (f) => events.push(`staging ${f.identity.segmentId}`),
      progress: (f, bytes) => progress.push([f.identity.segmentId, bytes]),
      announced: (f, a) => events.push(`announced ${f.identity.segmentId} ${a.source}`),
      failed: (f, err) => failures.push(`${f.identity.segmentId}: ${(err as Error).message}`),
    },
  });
  return { s, events, failures, progress };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `seg-${String(i).padStart(2, '0')}`);
const stateOnDisk = async () => Object.keys((JSON.parse(await readFile(statePath, 'utf8')) as { shipped: object }).shipped).sort();

describe('Shipper', () => {
  it('ships the complete files in groups of ten, oldest first, staging a few at a time, and records them', async () => {
    // Written newest first so that name order and age order differ.
    for (const [i, name] of names(12).entries()) await segment(name, BASE_S + 100 - i);
    const { stager, seen } = fakeStager();
    const { sqs, batches } = fakeSqs();
    const state = await ShipState.load(statePath);
    const now = (BASE_S + 1_000) * 1000;
    const { s, events, progress } = shipper({ stager, sqs, state, now: () => now });
    expect(await s.run()).toEqual({ announced: 12, failed: 0, waiting: 0 });
    const oldestFirst = names(12).reverse();
    expect(batches).toEqual([oldestFirst.slice(0, 10), oldestFirst.slice(10)]);
    // A group is staged, then announced, before the next is staged.
    expect(events.map((e) => e.split(' ')[0])).toEqual([...Array(10).fill('staging'), ...Array(10).fill('announced'), 'staging', 'staging', 'announced', 'announced']);
    expect(events).toContain(`announced seg-11 s3://staging/logs/seg-11`);
    expect(seen.maxInFlight).toBe(2);
    expect(progress).toContainEqual(['seg-03', 6]);
    expect(await stateOnDisk()).toEqual(names(12).map((n) => `logs/${n}`));
    const shipped = JSON.parse(await readFile(statePath, 'utf8')) as { shipped: Record<string, { size: number; sha256: string; at: string }> };
    expect(shipped.shipped['logs/seg-00']).toEqual({ size: 6, sha256: 'a'.repeat(64), at: new Date(now).toISOString() });

    // The next cycle finds every file recorded: nothing staged or sent again.
    const again = shipper({ stager, sqs, state, now: () => now });
    expect(await again.s.run()).toEqual({ announced: 0, failed: 0, waiting: 0 });
    expect(batches).toHaveLength(2);
    expect(seen.staged).toHaveLength(12);
  });

  it('watches a file still changing until it has not changed for the settle time', async () => {
    await segment('seg-new', BASE_S);
    const { stager, seen } = fakeStager();
    const { sqs } = fakeSqs();
    const state = await ShipState.load(statePath);
    let now = BASE_S * 1000 + SETTLE_MS - 1; // just under the settle time since its mtime
    const { s } = shipper({ stager, sqs, state, now: () => now });
    expect(await s.run()).toEqual({ announced: 0, failed: 0, waiting: 1 });
    expect(seen.staged).toEqual([]);
    now += SETTLE_MS - 1;
    expect(await s.run()).toEqual({ announced: 0, failed: 0, waiting: 1 });
    now += 1; // unchanged for the settle time since it was first seen
    expect(await s.run()).toEqual({ announced: 1, failed: 0, waiting: 0 });
  });

  it('a file that failed to stage waits for its back-off (2 s, then 4 s) before it is tried again', async () => {
    await segment('seg-bad', BASE_S);
    await segment('seg-good', BASE_S + 1);
    let broken = true;
    const { stager, seen } = fakeStager((f) => broken && f.identity.segmentId === 'seg-bad');
    const { sqs } = fakeSqs();
    const state = await ShipState.load(statePath);
    let now = (BASE_S + 1_000) * 1000;
    const { s, failures } = shipper({ stager, sqs, state, now: () => now });
    expect(await s.run()).toEqual({ announced: 1, failed: 1, waiting: 0 });
    expect(failures).toEqual(['seg-bad: cannot stage seg-bad']);
    now += 1_999;
    expect(await s.run()).toEqual({ announced: 1, failed: 1, waiting: 1 }); // waiting out its back-off
    now += 1;
    expect(await s.run()).toEqual({ announced: 1, failed: 2, waiting: 0 }); // tried at 2 s, failed again
    now += 3_999;
    await s.run();
    expect(seen.staged.filter((n) => n === 'seg-bad')).toHaveLength(2);
    broken = false;
    now += 1;
    expect(await s.run()).toEqual({ announced: 2, failed: 2, waiting: 0 });
    expect(await stateOnDisk()).toEqual(['logs/seg-bad', 'logs/seg-good']);
  });

  it('an announcement SQS refuses is a failure and is not recorded; the others are', async () => {
    for (const name of ['seg-a', 'seg-b', 'seg-c']) await segment(name, BASE_S);
    const { stager } = fakeStager();
    const { sqs } = fakeSqs((id) => id === 'seg-b');
    const state = await ShipState.load(statePath);
    const { s, failures, events } = shipper({ stager, sqs, state, now: () => (BASE_S + 1_000) * 1000 });
    expect(await s.run()).toEqual({ announced: 2, failed: 1, waiting: 0 });
    expect(failures).toEqual(['seg-b: SQS refused the announcement: InvalidParameterValue: refused']);
    expect(events.filter((e) => e.startsWith('announced')).map((e) => e.split(' ')[1])).toEqual(['seg-a', 'seg-c']);
    expect(await stateOnDisk()).toEqual(['logs/seg-a', 'logs/seg-c']);
  });

  it('when SQS cannot be reached, every file of the group fails and nothing is recorded', async () => {
    for (const name of ['seg-a', 'seg-b']) await segment(name, BASE_S);
    const { stager } = fakeStager();
    const { sqs } = fakeSqs(undefined, new Error('socket hang up'));
    const state = await ShipState.load(statePath);
    const { s, failures } = shipper({ stager, sqs, state, now: () => (BASE_S + 1_000) * 1000 });
    expect(await s.run()).toEqual({ announced: 0, failed: 2, waiting: 0 });
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatch(/^seg-a: SendMessageBatch .* failed: Error: socket hang up/);
    expect(state.size).toBe(0);
  });

  it('drops and saves the entries of segments whose files are gone, even when nothing is shipped', async () => {
    await segment('seg-a', BASE_S);
    await segment('seg-b', BASE_S);
    const { stager } = fakeStager();
    const { sqs } = fakeSqs();
    const state = await ShipState.load(statePath);
    const now = () => (BASE_S + 1_000) * 1000;
    await shipper({ stager, sqs, state, now }).s.run();
    expect(await stateOnDisk()).toEqual(['logs/seg-a', 'logs/seg-b']);
    await unlink(join(root, 'logs', 'seg-a'));
    expect(await shipper({ stager, sqs, state, now }).s.run()).toEqual({ announced: 0, failed: 0, waiting: 0 });
    expect(await stateOnDisk()).toEqual(['logs/seg-b']);
  });

  it('ship FILE: ships the files given, in groups of ten, settled or not, with no state', async () => {
    for (const name of names(11)) await segment(name, BASE_S);
    const { stager } = fakeStager();
    const { sqs, batches } = fakeSqs();
    const files: SegmentFile[] = names(11).map((n) => ({ identity: { dataspace: 'logs', segmentId: n }, path: join(root, 'logs', n), relative: `logs/${n}`, size: 6, mtimeMs: Date.now() }));
    const { s } = shipper({ stager, sqs, now: () => 0 });
    expect(await s.shipFiles(files)).toEqual({ announced: 11, failed: 0, waiting: 0 });
    expect(batches.map((b) => b.length)).toEqual([10, 1]);
    await expect(readFile(statePath)).rejects.toThrow(/ENOENT/);
  });

  it('watching: cycles until the signal aborts, an abort cutting the wait between cycles short', async () => {
    await segment('seg-a', BASE_S);
    const { stager } = fakeStager();
    const { sqs } = fakeSqs();
    const state = await ShipState.load(statePath);
    const abort = new AbortController();
    let cycles = 0;
    const started = Date.now();
    const s = new Shipper({
      layout: { root },
      stager,
      state,
      sqs,
      config: CONFIG,
      settleMs: SETTLE_MS,
      concurrency: 1,
      once: false,
      signal: abort.signal,
      pollMs: 600_000,
      now: () => (BASE_S + 1_000) * 1000,
      events: { cycle: () => void (++cycles === 1 && setTimeout(() => abort.abort(), 20)) },
    });
    expect(await s.run()).toEqual({ announced: 1, failed: 0, waiting: 0 });
    expect(cycles).toBe(1);
    expect(Date.now() - started).toBeLessThan(60_000); // not the 10 minutes of pollMs
  });

  it('watching without a state is a programming error', async () => {
    const { stager } = fakeStager();
    const { sqs } = fakeSqs();
    await expect(shipper({ stager, sqs, now: () => 0 }).s.run()).rejects.toThrow('Shipper: watching needs a state');
  });
});
