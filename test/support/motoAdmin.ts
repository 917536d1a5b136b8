/**
 * Set-up of moto_server for the deploy tests: what an operator (or the stack) creates before the functions run
 * — buckets in any region, queues with their DLQ, KMS keys — through clients that the permission harness does
 * not record (they are not the functions').
 */
import { CreateBucketCommand, PutObjectCommand, S3Client, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateKeyCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';

/** moto's default account. */
export const MOTO_ACCOUNT = '123456789012';
const credentials = { accessKeyId: 'operator', secretAccessKey: 'operator' };

export interface MotoAdmin {
  s3(region?: string): S3Client;
  readonly sqs: SQSClient;
  readonly kms: KMSClient;
  createBucket(name: string, region?: string): Promise<void>;
  /** A queue with `<name>-dlq` as its dead-letter queue; returns the queue's URL. */
  createQueue(name: string, maxReceiveCount?: number): Promise<string>;
  /** A symmetric KMS key; returns its ARN. */
  createKey(): Promise<string>;
  /** `kms:<base64>` of `plaintext` encrypted under `keyArn`, as the README tells operators to make it. */
  kmsSecret(keyArn: string, plaintext: string): Promise<string>;
  put(bucket: string, key: string, body: Buffer | string, region?: string): Promise<void>;
}

export function motoAdmin(endpoint: string, region = 'us-east-1'): MotoAdmin {
  const s3ByRegion = new Map<string, S3Client>();
  const s3 = (r = region) => {
    let c = s3ByRegion.get(r);
    if (c === undefined) {
      c = new S3Client({ endpoint, region: r, forcePathStyle: true, credentials });
      s3ByRegion.set(r, c);
    }
    return c;
  };
  const sqs = new SQSClient({ endpoint, region, credentials });
  const kms = new KMSClient({ endpoint, region, credentials });
  return {
    s3,
    sqs,
    kms,
    async createBucket(name, r = region) {
      // A parsing boundary of sorts: the region is the location constraint S3 expects for it.
      const location = r === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: r as BucketLocationConstraint } };
      await s3(r).send(new CreateBucketCommand({ Bucket: name, ...location }));
    },
    async createQueue(name, maxReceiveCount = 5) {
      const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
      const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
      const queue = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { VisibilityTimeout: '30', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: String(maxReceiveCount) }) } }));
      if (queue.QueueUrl === undefined) throw new Error(`moto created no queue ${name}`);
      return queue.QueueUrl;
    },
    async createKey() {
      const out = await kms.send(new CreateKeyCommand({}));
      if (out.KeyMetadata?.Arn === undefined) throw new Error('moto created no KMS key');
      return out.KeyMetadata.Arn;
    },
    async kmsSecret(keyArn, plaintext) {
      const out = await kms.send(new EncryptCommand({ KeyId: keyArn, Plaintext: Buffer.from(plaintext) }));
      return `kms:${Buffer.from(out.CiphertextBlob ?? new Uint8Array()).toString('base64')}`;
    },
    async put(bucket, key, body, r = region) {
      await s3(r).send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
  };
}
