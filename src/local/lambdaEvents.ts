/**
 * The events Lambda hands our functions, built for local runs (serve, invoke, tests): an SQS record as the
 * event source mapping delivers it, and the scheduled event EventBridge sends the cleanup function.
 */
import type { ScheduledEvent, SQSRecord } from 'aws-lambda';

export interface QueuedMessage {
  readonly messageId: string;
  readonly body: string;
  readonly receiptHandle?: string | undefined;
  /** SQS system attributes as ReceiveMessage returned them. */
  readonly attributes?: Readonly<Record<string, string>> | undefined;
  readonly md5OfBody?: string | undefined;
}

/** The SQS record Lambda's event source mapping would build from a received message of `queueUrl`. */
export function sqsRecord(message: QueuedMessage, queueUrl: string, region: string): SQSRecord {
  const attributes = message.attributes ?? {};
  const now = String(Date.now());
  return {
    messageId: message.messageId,
    receiptHandle: message.receiptHandle ?? '',
    body: message.body,
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? now,
      SenderId: attributes.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? now,
    },
    messageAttributes: {},
    md5OfBody: message.md5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${region}:000000000000:${queueUrl.split('/').pop() ?? 'queue'}`,
    awsRegion: region,
  };
}

/** The event EventBridge sends a scheduled function (serve's cleanup timer). */
export function scheduledEvent(region: string): ScheduledEvent {
  return {
    version: '0',
    id: `local-${Date.now()}`,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: new Date().toISOString(),
    region,
    resources: ['arn:aws:events:local:000000000000:rule/bucket-storage-cleanup'],
    detail: {},
  };
}
