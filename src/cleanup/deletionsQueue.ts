/**
 * The deletions queue as cleanup uses it: receive a batch (long polling, so an empty answer means the queue is
 * really empty rather than that the servers sampled held nothing), parse each message, delete the ones done.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { errorFields, logger } from '../core/logger.ts';
import { deletionAnnouncementSchema, parseJsonWith } from '../core/messages.ts';
import type { SegmentIdentity } from '../core/objectKeys.ts';
import { queueError } from '../core/queues.ts';

export interface ReceivedDeletion {
  readonly message: Message;
  readonly identity: SegmentIdentity;
}

export interface ReceivedBatch {
  readonly received: number;
  readonly deletions: readonly ReceivedDeletion[];
  /** Messages that are not deletion announcements: logged and left on the queue for its DLQ. */
  readonly malformed: number;
}

export class DeletionsQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly url: string,
    /** How long received messages stay hidden from other runs. */
    private readonly visibilityTimeoutSeconds: number,
  ) {}

  /** Up to 10 messages, waiting up to `waitSeconds` (0..20) for the first. */
  async receive(waitSeconds: number): Promise<ReceivedBatch> {
    let messages: Message[];
    try {
      const out = await this.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: this.url, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds, VisibilityTimeout: this.visibilityTimeoutSeconds, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }),
      );
      messages = out.Messages ?? [];
    } catch (err) {
      throw queueError('ReceiveMessage', this.url, err);
    }
    const deletions: ReceivedDeletion[] = [];
    let malformed = 0;
    for (const message of messages) {
      try {
        const deletion = parseJsonWith(deletionAnnouncementSchema, message.Body ?? '', 'deletion announcement');
        deletions.push({ message, identity: { dataspace: deletion.dataspace, segmentId: deletion.segmentId } });
      } catch (err) {
        malformed++;
        logger.error('malformed deletion announcement; left on the queue for the DLQ', { messageId: message.MessageId, receiveCount: message.Attributes?.ApproximateReceiveCount, ...errorFields(err) });
      }
    }
    return { received: messages.length, deletions, malformed };
  }

  /**
   * Deletes the messages of `done` from the queue; returns how many SQS confirmed. A failed request is logged,
   * not thrown: its messages come back after their visibility timeout and are marked again (a duplicate mark
   * of the same segments, which changes nothing).
   */
  async acknowledge(done: readonly ReceivedDeletion[]): Promise<number> {
    let confirmed = 0;
    for (let i = 0; i < done.length; i += 10) {
      const group = done.slice(i, i + 10);
      try {
        const out = await this.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.url, Entries: group.map((d, j) => ({ Id: String(j), ReceiptHandle: d.message.ReceiptHandle ?? '' })) }));
        confirmed += group.length - (out.Failed?.length ?? 0);
      } catch (err) {
        logger.warn('cleanup could not delete marked messages from the queue; they come back and are marked again', { messages: group.length, ...errorFields(queueError('DeleteMessageBatch', this.url, err)) });
      }
    }
    return confirmed;
  }
}
