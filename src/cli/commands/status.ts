/** `status`: the registry of buckets, queue depths (with their DLQs) and segment objects per bucket. */
import { GetQueueAttributesCommand, type QueueAttributeName, type SQSClient } from '@aws-sdk/client-sqs';
import { parseSegmentKey } from '../../core/objectKeys.ts';
import { queueError } from '../../core/queues.ts';
import { createRuntime, type Runtime } from '../../core/runtime.ts';
import type { BucketRef } from '../../core/s3Store.ts';
import { defineCommand } from '../command.ts';
import * as z from 'zod';

/** A queue's RedrivePolicy attribute, as SQS writes it. */
const redrivePolicySchema = z.object({ deadLetterTargetArn: z.string().optional(), maxReceiveCount: z.union([z.string(), z.number()]).optional() });

async function queueAttributes(sqs: SQSClient, url: string, names: QueueAttributeName[]): Promise<Record<string, string>> {
  try {
    return (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }))).Attributes ?? {};
  } catch (err) {
    throw queueError('GetQueueAttributes', url, err);
  }
}

async function queueDepths(sqs: SQSClient, url: string | undefined) {
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

async function countSegments(runtime: Runtime, ref: BucketRef): Promise<number | string> {
  let count = 0;
  try {
    for await (const page of runtime.store.list(ref, runtime.config.keyPrefix)) {
      count += page.filter((o) => parseSegmentKey(runtime.config.keyPrefix, o.key) !== undefined).length;
    }
    return count;
  } catch (err) {
    return `unavailable (${err instanceof Error ? err.message : 'error'})`;
  }
}

export const statusCommand = defineCommand({
  summary: 'registry, queue depths, segment objects per bucket',
  usage: 'status',
  options: {},
  help: {
    description: 'Prints, as JSON, the registry of buckets (which is current), the segment objects per bucket and the depths of both queues and their dead-letter queues. Reads the registry, never writes it.',
    options: {},
    examples: ['bucket-storage status'],
  },
  async run(ctx) {
    const runtime = await createRuntime(ctx.env);
    const { registry } = runtime;
    const buckets = await Promise.all(
      (await registry.all()).map(async (ref) => ({ ...ref, current: ref.bucket === registry.current.bucket && ref.region === registry.current.region, segments: await countSegments(runtime, ref) })),
    );
    const status = {
      prefix: runtime.config.keyPrefix,
      encryption: runtime.config.encryption.mode,
      buckets,
      segmentsQueue: await queueDepths(runtime.clients.sqs, runtime.config.segmentsQueueUrl),
      deletionsQueue: await queueDepths(runtime.clients.sqs, runtime.config.deletionsQueueUrl),
    };
    ctx.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  },
});
