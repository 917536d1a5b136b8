/**
 * The permission harness, request side: a middleware added to every client that createClients builds (through
 * its `instrument` hook) records each AWS request a function makes — who made it (set by the test: the
 * function and the deployment whose role it runs under), service, operation, bucket/key, queue, KMS key, the
 * HTTP status, and the access key and region it was signed with — and `iamChecks` maps each request to the
 * IAM action(s) and resource ARN(s) AWS authorises it against (the Service Authorization Reference):
 *
 *   HeadObject, GetObject             s3:GetObject on the object; a 404 also needs s3:ListBucket on the bucket
 *                                     (without it S3 answers 403), and a GET of an SSE-KMS object kms:Decrypt
 *   PutObject, CreateMultipartUpload  s3:PutObject; with SSE-KMS also kms:GenerateDataKey on the key
 *   UploadPart, CompleteMultipartUpload  s3:PutObject; of an SSE-KMS upload also kms:Decrypt on the key
 *   AbortMultipartUpload              s3:AbortMultipartUpload on the object
 *   ListMultipartUploads              s3:ListBucketMultipartUploads on the bucket
 *   ListObjectsV2, HeadBucket         s3:ListBucket on the bucket
 *   DeleteObject                      s3:DeleteObject on the object; DeleteObjects: s3:DeleteObject per key
 *   SQS <Op>(Batch)                   sqs:<Op> on the queue ARN (SendMessageBatch → sqs:SendMessage, …)
 *   KMS Decrypt, GenerateDataKey, …   kms:<Op> on the key ARN (Decrypt: the key KMS reports)
 *
 * An operation without a mapping is an error of the harness (it names the operation), never a silent pass.
 */
import type { DeserializeHandlerArguments, DeserializeHandlerOutput, DeserializeMiddleware } from '@smithy/types';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { AwsClient } from '../../src/core/clients.ts';

export interface RecordedRequest {
  /** The function (or 'ingest', the ingestion nodes) the request was made as. */
  readonly principal: string;
  /** The deployment (packaged template) whose role the principal had when it made the request. */
  readonly deployment: string;
  readonly service: 's3' | 'sqs' | 'kms';
  readonly operation: string;
  /** Region and access key id of its SigV4 signature. */
  readonly signedRegion: string | undefined;
  readonly accessKeyId: string | undefined;
  readonly bucket: string | undefined;
  readonly key: string | undefined;
  /** DeleteObjects: every key of the request. */
  readonly keys: readonly string[];
  readonly queueUrl: string | undefined;
  /** KMS: the key named by the request or, for Decrypt, reported by KMS. S3: the SSE-KMS key involved. */
  readonly kmsKey: string | undefined;
  /** HTTP status of the answer (undefined when none came). */
  readonly status: number | undefined;
}

export interface IamCheck {
  readonly action: string;
  readonly resource: string;
  readonly context: Readonly<Record<string, string>>;
}

export interface Account {
  readonly account: string;
  readonly region: string;
}

/** A string field of an SDK input or output object, if it has one. */
function field(value: unknown, name: string): string | undefined {
  if (typeof value !== 'object' || value === null || !(name in value)) return undefined;
  const v: unknown = Reflect.get(value, name);
  return typeof v === 'string' ? v : undefined;
}

/** DeleteObjects: the keys of input.Delete.Objects. */
function deleteKeys(input: unknown): string[] {
  const del: unknown = typeof input === 'object' && input !== null ? Reflect.get(input, 'Delete') : undefined;
  const objects: unknown = typeof del === 'object' && del !== null ? Reflect.get(del, 'Objects') : undefined;
  return Array.isArray(objects) ? objects.flatMap((o: unknown) => field(o, 'Key') ?? []) : [];
}

/** Access key id, region and service from a SigV4 Authorization header. */
function signature(request: unknown): { accessKeyId: string; region: string } | undefined {
  const headers: unknown = typeof request === 'object' && request !== null ? Reflect.get(request, 'headers') : undefined;
  const auth = field(headers, 'authorization') ?? field(headers, 'Authorization');
  const m = auth === undefined ? null : /Credential=([^/]+)\/\d{8}\/([^/]+)\/[^/]+\/aws4_request/.exec(auth);
  return m?.[1] && m[2] ? { accessKeyId: m[1], region: m[2] } : undefined;
}

function statusOf(err: unknown): number | undefined {
  const meta: unknown = typeof err === 'object' && err !== null ? Reflect.get(err, '$metadata') : undefined;
  const status: unknown = typeof meta === 'object' && meta !== null ? Reflect.get(meta, 'httpStatusCode') : undefined;
  return typeof status === 'number' ? status : undefined;
}

const SERVICES: Readonly<Record<string, RecordedRequest['service']>> = { S3Client: 's3', SQSClient: 'sqs', KMSClient: 'kms' };

/** Records the requests of every client it instruments. */
export class RequestRecorder {
  readonly requests: RecordedRequest[] = [];
  /** UploadId → KMS key of an SSE-KMS multipart upload (its parts and completion need kms:Decrypt). */
  readonly #uploadKeys = new Map<string, string>();

  /** An `instrument` hook for createClients/createRuntime: requests are recorded as `principal` of `deployment`. */
  as(principal: string, deployment: string): (client: AwsClient) => void {
    // Outside the deserializer: the recorder sees the signed request and the parsed answer or error.
    const options = { step: 'deserialize', priority: 'high', name: `permissionRecorder-${principal}` } as const;
    return (client) => {
      if (client instanceof S3Client) client.middlewareStack.add(this.#middleware(principal, deployment), options);
      else if (client instanceof SQSClient) client.middlewareStack.add(this.#middleware(principal, deployment), options);
      else client.middlewareStack.add(this.#middleware(principal, deployment), options);
    };
  }

  /** The requests recorded as `principal` (of `deployment`, if given). */
  of(principal: string, deployment?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.principal === principal && (deployment === undefined || r.deployment === deployment));
  }

  #middleware<I extends object, O extends object>(principal: string, deployment: string): DeserializeMiddleware<I, O> {
    return (next, context) => async (args: DeserializeHandlerArguments<I>): Promise<DeserializeHandlerOutput<O>> => {
      const service = SERVICES[context.clientName ?? ''];
      const operation = (context.commandName ?? '').replace(/Command$/, '');
      const signed = signature(args.request);
      const input = args.input;
      const record = (status: number | undefined, output: unknown) => {
        if (service === undefined) throw new Error(`permission harness: no service for client ${context.clientName ?? '?'}`);
        const uploadId = field(input, 'UploadId') ?? field(output, 'UploadId');
        let kmsKey = service === 'kms' ? (field(output, 'KeyId') ?? field(input, 'KeyId')) : (field(input, 'SSEKMSKeyId') ?? field(output, 'SSEKMSKeyId'));
        if (service === 's3' && uploadId !== undefined) {
          if (kmsKey !== undefined) this.#uploadKeys.set(uploadId, kmsKey);
          kmsKey ??= this.#uploadKeys.get(uploadId);
        }
        this.requests.push({
          principal,
          deployment,
          service,
          operation,
          signedRegion: signed?.region,
          accessKeyId: signed?.accessKeyId,
          bucket: field(input, 'Bucket'),
          key: field(input, 'Key'),
          keys: deleteKeys(input),
          queueUrl: field(input, 'QueueUrl'),
          kmsKey,
          status,
        });
      };
      try {
        const out = await next(args);
        record(responseStatus(out.response), out.output);
        return out;
      } catch (err) {
        record(statusOf(err), undefined);
        throw err;
      }
    };
  }
}

function responseStatus(response: unknown): number | undefined {
  const status: unknown = typeof response === 'object' && response !== null ? Reflect.get(response, 'statusCode') : undefined;
  return typeof status === 'number' ? status : undefined;
}

const s3Object = (bucket: string, key: string) => `arn:aws:s3:::${bucket}/${key}`;
const s3Bucket = (bucket: string) => `arn:aws:s3:::${bucket}`;

/** The SQS queue ARN of a queue URL (…/<account>/<name>). */
export function queueArn(url: string, region: string): string {
  const [account, name] = new URL(url).pathname.split('/').filter(Boolean).slice(-2);
  if (account === undefined || name === undefined) throw new Error(`permission harness: ${url} is not a queue URL`);
  return `arn:aws:sqs:${region}:${account}:${name}`;
}

/** A KMS key ARN from a key id or ARN (KMS requests may name the key by id). */
function keyArn(key: string, where: Account): string {
  return key.startsWith('arn:') ? key : `arn:aws:kms:${where.region}:${where.account}:key/${key}`;
}

const SQS_ACTIONS: Readonly<Record<string, string>> = {
  SendMessage: 'sqs:SendMessage',
  SendMessageBatch: 'sqs:SendMessage',
  ReceiveMessage: 'sqs:ReceiveMessage',
  DeleteMessage: 'sqs:DeleteMessage',
  DeleteMessageBatch: 'sqs:DeleteMessage',
  ChangeMessageVisibility: 'sqs:ChangeMessageVisibility',
  ChangeMessageVisibilityBatch: 'sqs:ChangeMessageVisibility',
  GetQueueAttributes: 'sqs:GetQueueAttributes',
  GetQueueUrl: 'sqs:GetQueueUrl',
};

/** The IAM checks AWS makes for one request. Throws for an operation the harness does not know. */
export function iamChecks(r: RecordedRequest, where: Account): IamCheck[] {
  const check = (action: string, resource: string, context: Record<string, string> = {}): IamCheck => ({ action, resource, context });
  const unknown = () => new Error(`permission harness: no IAM mapping for ${r.service} ${r.operation}; add it to test/support/iamRequests.ts`);
  if (r.service === 'sqs') {
    const action = SQS_ACTIONS[r.operation];
    if (action === undefined || r.queueUrl === undefined) throw unknown();
    return [check(action, queueArn(r.queueUrl, r.signedRegion ?? where.region))];
  }
  if (r.service === 'kms') {
    if (!['Decrypt', 'Encrypt', 'GenerateDataKey'].includes(r.operation)) throw unknown();
    if (r.kmsKey === undefined) throw new Error(`permission harness: kms ${r.operation} named no key and KMS reported none (status ${String(r.status)})`);
    return [check(`kms:${r.operation}`, keyArn(r.kmsKey, where))];
  }
  const bucket = r.bucket;
  if (bucket === undefined) throw unknown();
  const kms = (action: string) => (r.kmsKey === undefined ? [] : [check(action, keyArn(r.kmsKey, where))]);
  const object = () => {
    if (r.key === undefined) throw unknown();
    return s3Object(bucket, r.key);
  };
  switch (r.operation) {
    case 'HeadObject':
      // A missing key: S3 answers 404 only to a caller allowed s3:ListBucket, 403 to anyone else.
      return [check('s3:GetObject', object()), ...(r.status === 404 ? [check('s3:ListBucket', s3Bucket(bucket))] : [])];
    case 'GetObject':
      return [check('s3:GetObject', object()), ...(r.status === 404 ? [check('s3:ListBucket', s3Bucket(bucket))] : []), ...kms('kms:Decrypt')];
    case 'PutObject':
    case 'CreateMultipartUpload':
      return [check('s3:PutObject', object()), ...kms('kms:GenerateDataKey')];
    case 'UploadPart':
    case 'CompleteMultipartUpload':
      return [check('s3:PutObject', object()), ...kms('kms:Decrypt')];
    case 'AbortMultipartUpload':
      return [check('s3:AbortMultipartUpload', object())];
    case 'ListMultipartUploads':
      return [check('s3:ListBucketMultipartUploads', s3Bucket(bucket))];
    case 'ListObjectsV2':
    case 'HeadBucket':
      return [check('s3:ListBucket', s3Bucket(bucket))];
    case 'DeleteObject':
      return [check('s3:DeleteObject', object())];
    case 'DeleteObjects':
      return r.keys.map((k) => check('s3:DeleteObject', s3Object(bucket, k)));
    default:
      throw unknown();
  }
}
