/**
 * Chaos: 5,000 announcements of small and medium segments, 10% of them poison (bad JSON, unknown fields, bad
 * identifiers, missing sources, size mismatches), through `serve` with Lambda's batch settings (batch 10).
 * Afterwards every good segment is stored, every poison message sits in the DLQ, no message became two
 * objects, and serve's peak RSS stayed bounded. CHAOS_SCALE=small runs 1,000.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { spawn } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeObjectMetadata } from '../../src/core/objectMetadata.ts';
import { formatSegmentKey } from '../../src/core/objectKeys.ts';
import { createRuntime } from '../../src/core/runtime.ts';
import { startLocalServers, type LocalServers } from '../../src/local/embeddedServers.ts';
import { recordChaos, scaled } from './summary.ts';

const MESSAGES = scaled(5000, 1000);
let servers: LocalServers;
let dir: string;

beforeAll(async () => {
  servers = await startLocalServers();
  servers.createBucket('load-bucket');
  dir = await mkdtemp(join(tmpdir(), 'bks-load-'));
});
afterAll(async () => {
  await servers?.stop();
  await rm(dir, { recursive: true, force: true });
});

function poison(i: number): string {
  switch (Math.floor(i / 10) % 5) {
    case 0:
      return '{"version":1,"dataspace":';
    case 1:
      return JSON.stringify({ version: 1, dataspace: 'load', segmentId: `p-${i}`, source: `file://${dir}/seg-0`, priority: 'high' });
    case 2:
      return JSON.stringify({ version: 1, dataspace: 'load', segmentId: `../p-${i}`, source: `file://${dir}/seg-0` });
    case 3:
      return JSON.stringify({ version: 1, dataspace: 'load', segmentId: `p-${i}`, source: `file://${dir}/missing-${i}` });
    default:
      return JSON.stringify({ version: 1, dataspace: 'load', segmentId: `p-${i}`, source: `file://${dir}/seg-0`, size: 1 });
  }
}

describe('load', () => {
  it(`${MESSAGES} announcements with 10% poison through serve`, async () => {
    const queue = servers.createQueue('load-segments', { maxReceiveCount: 2, visibilityTimeoutSeconds: 30 });
    const env = { ...servers.env(), S3_STORAGE_BUCKET: 'load-bucket', S3_STORAGE_ENCRYPTION_KEY: 'load-test-secret-0123456789abcdefghijklmnopqrstuvwxyz', S3_STORAGE_SOURCE_ROOT: dir, S3_STORAGE_SEGMENTS_QUEUE_URL: queue.url, LOG_LEVEL: 'ERROR' };
    const runtime = await createRuntime(env);
    const good: { id: string; size: number }[] = [];
    const bodies: string[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      if (i % 10 === 9) {
        bodies.push(poison(i));
        continue;
      }
      const size = i % 50 === 0 ? 2 * 1024 * 1024 + i : 1 + ((i * 2654435761) % 60_000);
      const id = `seg-${i}`;
      await writeFile(join(dir, id), Buffer.alloc(size, i % 251));
      good.push({ id, size });
      bodies.push(JSON.stringify({ version: 1, dataspace: 'load', segmentId: id, source: `file://${join(dir, id)}`, size }));
    }
    for (let i = 0; i < bodies.length; i += 10) {
      await runtime.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queue.url, Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })) }));
    }

    // serve as an operator runs it, its peak RSS measured by time(1).
    const child = spawn('/usr/bin/time', ['-f', 'PEAK_RSS_KIB %M', process.execPath, 'bin/bucket-storage.mjs', 'serve', '--batch-size', '10', '--retry-delay', '0', '--until-idle', '3'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const reasons = new Set<string>();
    let leaked = false;
    child.stderr.on('data', (c: Buffer) => {
      const text = c.toString();
      for (const m of text.matchAll(/"errorName": "(\w+)"/g)) reasons.add(m[1] ?? '');
      if (text.includes('load-test-secret')) leaked = true;
      stderr = (stderr + text).slice(-20_000);
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(0);
    const peakMiB = Number(/PEAK_RSS_KIB (\d+)/.exec(stderr)?.[1] ?? 0) / 1024;

    let keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await runtime.clients.s3().send(new ListObjectsV2Command({ Bucket: 'load-bucket', ContinuationToken: token }));
      keys = keys.concat((out.Contents ?? []).map((c) => c.Key ?? ''));
      token = out.NextContinuationToken;
    } while (token);
    const expected = new Set(good.map((g) => formatSegmentKey('', { dataspace: 'load', segmentId: g.id })));
    const missing = [...expected].filter((k) => !keys.includes(k));
    const extra = keys.filter((k) => !expected.has(k));
    let wrongSize = 0;
    for (const g of good.filter((_, i) => i % 25 === 0)) {
      const info = await runtime.store.head({ bucket: 'load-bucket', region: servers.region }, formatSegmentKey('', { dataspace: 'load', segmentId: g.id }));
      if (decodeObjectMetadata(info?.metadata ?? {})?.plaintextSize !== g.size) wrongSize++;
    }
    const depth = async (url: string) => Number((await runtime.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }))).Attributes?.ApproximateNumberOfMessages ?? 0);
    const inDlq = await depth(queue.dlqUrl);
    recordChaos({ scenario: `load ${MESSAGES} msgs, 10% poison (serve peak RSS ${peakMiB.toFixed(0)} MiB)`, faults: { poison: MESSAGES / 10 }, retried: MESSAGES / 10, segmentsChecked: good.length, losses: missing.length + wrongSize, foreignDeletions: 0 });
    expect(missing).toEqual([]);
    expect(extra).toEqual([]); // no message became two objects, no poison became one
    expect(wrongSize).toBe(0);
    expect(inDlq).toBe(MESSAGES / 10);
    expect(await depth(queue.url)).toBe(0);
    // Every kind of poison is logged with its reason, and no line holds the secret.
    expect([...reasons].sort()).toEqual(['IntegrityError', 'InvalidMessageError', 'LocationError']);
    expect(leaked).toBe(false);
    expect(peakMiB).toBeGreaterThan(0);
    expect(peakMiB).toBeLessThan(400);
  });
});
