/**
 * `status [--json]`: every registered bucket with the storage used in it (segment objects and bytes under the
 * prefix, from a paged listing; progress on a terminal) and which one is current, the queue depths (with their
 * DLQs), the pending deletions (count, oldest, next due) and the registries of other prefixes in the state
 * bucket. A readable table by default; `--json` prints one JSON document for scripts.
 */
import { GetQueueAttributesCommand, type QueueAttributeName, type SQSClient } from '@aws-sdk/client-sqs';
import * as z from 'zod';
import { readAllMarks, summarise, type PendingSummary } from '../../core/deletionMarks/index.ts';
import { findOtherRegistries } from '../../core/otherPrefixes.ts';
import { queueError } from '../../core/queues.ts';
import { createRuntime, type Runtime } from '../../core/runtime.ts';
import type { BucketRef } from '../../core/s3Store.ts';
import { measureStorage } from '../../core/storageUsage.ts';
import type { Command } from '../command.ts';
import { formatBytes, ProgressLine, table } from '../terminal.ts';

/** A queue's RedrivePolicy attribute, as SQS writes it. */
const redrivePolicySchema = z.object({ deadLetterTargetArn: z.string().optional(), maxReceiveCount: z.union([z.string(), z.number()]).optional() });

async function queueAttributes(sqs: SQSClient, url: string, names: QueueAttributeName[]): Promise<Record<string, string>> {
  try {
    return (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }))).Attributes ?? {};
  } catch (err) {
    throw queueError('GetQueueAttributes', url, err);
  }
}

interface QueueDepths {
  readonly visible: number;
  readonly inFlight: number;
  readonly deadLetter: number | undefined;
  readonly maxReceiveCount: string | number | undefined;
}

async function queueDepths(sqs: SQSClient, url: string | undefined): Promise<QueueDepths | undefined> {
  if (url === undefined) return undefined;
  const a = await queueAttributes(sqs, url, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'RedrivePolicy']);
  const redrive = a.RedrivePolicy ? redrivePolicySchema.parse(JSON.parse(a.RedrivePolicy)) : undefined;
  let dlq: number | undefined;
  if (redrive?.deadLetterTargetArn) {
    // The DLQ's URL is the queue's with the DLQ's name.
    const dlqUrl = url.replace(/[^/]+$/, redrive.deadLetterTargetArn.split(':').pop() ?? '');
    const d = await queueAttributes(sqs, dlqUrl, ['ApproximateNumberOfMessages']).catch(() => undefined);
    dlq = d ? Number(d.ApproximateNumberOfMessages ?? 0) : undefined;
  }
  return { visible: Number(a.ApproximateNumberOfMessages ?? 0), inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0), deadLetter: dlq, maxReceiveCount: redrive?.maxReceiveCount };
}

/** A registered bucket and the storage used in it: `segments` objects of `bytes`, or why it could not be listed. */
export type BucketStatus = BucketRef & { readonly current: boolean } & ({ readonly segments: number; readonly bytes: number } | { readonly error: string });

async function bucketStatus(runtime: Runtime, ref: BucketRef, progress: ProgressLine): Promise<BucketStatus> {
  const current = ref.bucket === runtime.registry.current.bucket && ref.region === runtime.registry.current.region;
  try {
    const used = await measureStorage(runtime.store, ref, runtime.config.keyPrefix, {
      onPage: (u) => progress.update(`listing s3://${ref.bucket}: ${u.objects.toLocaleString('en-US')} segment objects, ${formatBytes(u.bytes)}`),
    });
    return { ...ref, current, segments: used.objects, bytes: used.bytes };
  } catch (err) {
    return { ...ref, current, error: err instanceof Error ? err.message : String(err) };
  }
}

interface Status {
  readonly prefix: string;
  readonly encryption: string;
  readonly buckets: readonly BucketStatus[];
  readonly segmentsQueue: QueueDepths | undefined;
  readonly deletionsQueue: QueueDepths | undefined;
  readonly pendingDeletions: PendingSummary & { readonly delayHours: number; readonly location: string };
  readonly otherRegistries: readonly string[];
}

function renderDeletions(d: Status['pendingDeletions'], others: readonly string[]): string {
  const lines = [
    `pending deletions (grace period ${d.delayHours} h, marks in ${d.location}): ${d.pending.toLocaleString('en-US')} pending, ${d.applying.toLocaleString('en-US')} being carried out` +
      (d.oldest === undefined ? '' : `, oldest recorded ${d.oldest}, next due ${d.nextDue ?? '-'}`),
  ];
  for (const m of d.damaged) lines.push(`damaged deletion mark ${m.key}: ${m.error}`);
  if (others.length > 0) lines.push(`registries of other prefixes in the state bucket: ${others.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

function render(status: Status): string {
  const buckets = table(
    [
      ['BUCKET', 'REGION', 'SEGMENT OBJECTS', 'BYTES', ''],
      ...status.buckets.map((b) =>
        'error' in b
          ? [b.bucket, b.region, '?', '?', `unavailable: ${b.error}`]
          : [b.bucket, b.region, b.segments.toLocaleString('en-US'), `${formatBytes(b.bytes)}`, b.current ? 'current' : ''],
      ),
    ],
    new Set([2, 3]),
  );
  const queue = (name: string, q: QueueDepths | undefined) =>
    q === undefined ? [name, '-', '-', '-', '(not configured)'] : [name, String(q.visible), String(q.inFlight), q.deadLetter === undefined ? '-' : String(q.deadLetter), q.maxReceiveCount === undefined ? '' : `DLQ after ${q.maxReceiveCount} receives`];
  const queues = table([['QUEUE', 'WAITING', 'IN FLIGHT', 'DEAD-LETTER', ''], queue('segments', status.segmentsQueue), queue('deletions', status.deletionsQueue)], new Set([1, 2, 3]));
  return `prefix ${status.prefix === '' ? '(none)' : status.prefix}, encryption ${status.encryption}\n\n${buckets}\n\n${queues}\n\n${renderDeletions(status.pendingDeletions, status.otherRegistries)}`;
}

export const statusCommand: Command = {
  summary: 'storage used per registered bucket (current marked), queue depths, pending deletions; --json for scripts',
  usage: 'status [--json]',
  options: { json: { type: 'boolean' } },
  async run(ctx) {
    const runtime = await createRuntime(ctx.env);
    const progress = new ProgressLine(ctx.stderr);
    const buckets: BucketStatus[] = [];
    // One bucket after the other: the progress line follows one listing at a time.
    for (const ref of await runtime.registry.all()) buckets.push(await bucketStatus(runtime, ref, progress));
    progress.done();
    const status: Status = {
      prefix: runtime.config.keyPrefix,
      encryption: runtime.config.encryption.mode,
      buckets,
      segmentsQueue: await queueDepths(runtime.clients.sqs, runtime.config.segmentsQueueUrl),
      deletionsQueue: await queueDepths(runtime.clients.sqs, runtime.config.deletionsQueueUrl),
      pendingDeletions: { delayHours: runtime.config.deletionDelayHours, location: runtime.deletions.where, ...summarise(await readAllMarks(runtime.deletions)) },
      otherRegistries: await findOtherRegistries(runtime.store, runtime.config),
    };
    ctx.stdout.write(ctx.values.json === true ? `${JSON.stringify(status, null, 2)}\n` : render(status));
    return 0;
  },
};
