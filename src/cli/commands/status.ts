/** `status`: the registry of buckets, queue depths (with their DLQs) and segment objects per bucket. */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { loadBucketRegistry } from '../../core/bucketRegistry.ts';
import { parseSegmentKey } from '../../core/objectKeys.ts';
import { createRuntime, type Runtime } from '../../core/runtime.ts';
import type { Command } from '../command.ts';

async function queueDepths(runtime: Runtime, url: string | undefined) {
  if (url === undefined) return undefined;
  const attrs = await runtime.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'RedrivePolicy'] }));
  const a = attrs.Attributes ?? {};
  const redrive = a.RedrivePolicy ? (JSON.parse(a.RedrivePolicy) as { deadLetterTargetArn?: string; maxReceiveCount?: string | number }) : undefined;
  let dlq: number | undefined;
  if (redrive?.deadLetterTargetArn) {
    // The DLQ's URL is the queue's with the DLQ's name.
    const dlqUrl = url.replace(/[^/]+$/, redrive.deadLetterTargetArn.split(':').pop() ?? '');
    const d = await runtime.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['ApproximateNumberOfMessages'] })).catch(() => undefined);
    dlq = d ? Number(d.Attributes?.ApproximateNumberOfMessages ?? 0) : undefined;
  }
  return { visible: Number(a.ApproximateNumberOfMessages ?? 0), inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0), deadLetter: dlq, maxReceiveCount: redrive?.maxReceiveCount };
}

async function countSegments(runtime: Runtime, bucket: string, region: string): Promise<number | string> {
  let count = 0;
  let token: string | undefined;
  try {
    do {
      const out = await runtime.clients.s3(region).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: runtime.config.keyPrefix || undefined, ContinuationToken: token }));
      count += (out.Contents ?? []).filter((c) => c.Key !== undefined && parseSegmentKey(runtime.config.keyPrefix, c.Key) !== undefined).length;
      token = out.NextContinuationToken;
    } while (token);
    return count;
  } catch (err) {
    return `unavailable (${err instanceof Error ? err.name : 'error'})`;
  }
}

export const statusCommand: Command = {
  summary: 'registry, queue depths, segment objects per bucket',
  usage: 'status',
  options: {},
  async run(ctx) {
    const runtime = await createRuntime(ctx.env);
    const registry = await loadBucketRegistry(runtime);
    const buckets = await Promise.all(
      (await registry.all()).map(async (ref) => ({ ...ref, current: ref.bucket === registry.current.bucket && ref.region === registry.current.region, segments: await countSegments(runtime, ref.bucket, ref.region) })),
    );
    const status = {
      prefix: runtime.config.keyPrefix,
      encryption: runtime.config.encryption.mode,
      buckets,
      segmentsQueue: await queueDepths(runtime, runtime.config.segmentsQueueUrl),
      deletionsQueue: await queueDepths(runtime, runtime.config.deletionsQueueUrl),
    };
    ctx.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  },
};
