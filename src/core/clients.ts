/**
 * The one factory of AWS clients, for every function and the CLI. Credentials are scoped as the design says:
 * the static keys of the configuration (S3_STORAGE_ACCESSKEY/SECRETKEY), when set, sign the requests to the
 * data buckets only (`s3()`); everything else — SQS, KMS, and the S3 buckets that belong to the deployment
 * (the state bucket with the registry, the staging bucket, s3:// restore destinations: `s3AsRole()`) — is
 * signed by the default provider chain, which on Lambda is the function's role. So a storage-only IAM user's
 * keys never reach the queues, the `kms:` secrets or the registry.
 *
 * SQS and KMS endpoints come from the SDK's own AWS_ENDPOINT_URL_* variables, read from the same environment as
 * the configuration; S3's from S3_STORAGE_ENDPOINT_BASE (for every S3 client), where `{bucket}` stands for each
 * bucket's own host (bucketEndpoint.ts). S3 clients are cached per region, because registered buckets and the
 * staging bucket may live in other regions than the current one. A configured HTTP proxy carries every client's
 * requests (S3's unless S3_STORAGE_USE_HTTP_PROXY=false; proxyAgent.ts).
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:https';
import { Agent as HttpAgent } from 'node:http';
import { addBucketHost, hasBucketPlaceholder, sdkEndpoint } from './bucketEndpoint.ts';
import type { Config } from './config.ts';
import { proxiedAgent } from './proxyAgent.ts';

export interface Clients {
  /** The S3 client for the data buckets in `region` (default: the current bucket's); static keys when set. */
  s3(region?: string): S3Client;
  /** The S3 client signed by the function's role (never the static keys): state, staging and restore buckets. */
  s3AsRole(region?: string): S3Client;
  /** Signed by the function's role. */
  readonly sqs: SQSClient;
  /** Signed by the function's role. Loaded on first use: only `kms:` secrets need it, and the module costs cold-start time. */
  kms(): Promise<KMSClient>;
}

/** Any client the factory builds. */
export type AwsClient = S3Client | SQSClient | KMSClient;

export interface ClientOptions {
  /**
   * Called with every client the factory builds, before it sends anything: the runtime's request counters
   * (metrics), and in tests the permission harness, which records each request.
   */
  readonly instrument?: (client: AwsClient) => void;
}

/** Retry budget of every client: adaptive back-off absorbs S3 503 SlowDown and throttling. */
export const MAX_ATTEMPTS = 6;

/** Time a request may wait for its answer, and a connection may stay idle mid-body, before the attempt fails. */
export const REQUEST_TIMEOUT_MS = 120_000;

/** The request handler; through the proxy when `proxy` is given. */
function requestHandler(proxy: Config['proxy']): NodeHttpHandler {
  const agentOptions = { keepAlive: true, maxSockets: 64 };
  return new NodeHttpHandler({
    httpAgent: proxiedAgent('http', proxy, new HttpAgent(agentOptions), agentOptions),
    httpsAgent: proxiedAgent('https', proxy, new Agent(agentOptions), agentOptions),
    connectionTimeout: 5_000,
    // No answer within 2 minutes fails the attempt (the SDK retries it); without throwOnRequestTimeout the
    // handler would only log a warning and wait forever. A connection idle that long mid-body fails too.
    requestTimeout: REQUEST_TIMEOUT_MS,
    throwOnRequestTimeout: true,
    socketTimeout: REQUEST_TIMEOUT_MS,
  });
}

export function createClients(config: Config, options: ClientOptions = {}): Clients {
  const staticKeys = config.credentials && {
    accessKeyId: config.credentials.accessKeyId,
    secretAccessKey: config.credentials.secretAccessKey.reveal(),
  };
  const common = { maxAttempts: MAX_ATTEMPTS, retryMode: 'adaptive', requestHandler: requestHandler(config.proxy) } as const;
  const s3Handler = config.proxy === undefined || config.proxy.forS3 ? common.requestHandler : requestHandler(undefined);
  const perBucketHost = hasBucketPlaceholder(config.endpoint);
  const built = <T extends AwsClient>(client: T): T => {
    options.instrument?.(client);
    return client;
  };
  const s3Factory = (credentials: typeof staticKeys) => {
    const byRegion = new Map<string, S3Client>();
    return (region: string = config.region): S3Client => {
      let client = byRegion.get(region);
      if (client === undefined) {
        client = new S3Client({
          ...common,
          ...(credentials ? { credentials } : {}),
          region,
          requestHandler: s3Handler,
          // With {bucket} in the endpoint the SDK builds path-style URLs that addBucketHost turns into per-bucket hosts.
          forcePathStyle: config.forcePathStyle || perBucketHost,
          ...(config.endpoint ? { endpoint: perBucketHost ? sdkEndpoint(config.endpoint) : config.endpoint } : {}),
          // Checksums are computed where S3 supports them and validated on GET where S3 returns them.
          requestChecksumCalculation: 'WHEN_SUPPORTED',
          responseChecksumValidation: 'WHEN_SUPPORTED',
        });
        if (perBucketHost) addBucketHost(client);
        byRegion.set(region, built(client));
      }
      return client;
    };
  };
  const s3AsRole = s3Factory(undefined);
  // Without static keys, the data buckets are reached with the role too: the same clients serve both.
  const s3 = staticKeys ? s3Factory(staticKeys) : s3AsRole;
  let sqs: SQSClient | undefined;
  let kms: Promise<KMSClient> | undefined;
  return {
    s3,
    s3AsRole,
    get sqs() {
      sqs ??= built(
        new SQSClient({
          ...common,
          region: config.awsRegion,
          // Queue URLs of local servers name hosts that do not resolve: with an endpoint set, use it, not the URL.
          ...(config.sqsEndpoint ? { endpoint: config.sqsEndpoint, useQueueUrlAsEndpoint: false } : {}),
        }),
      );
      return sqs;
    },
    kms() {
      kms ??= import('@aws-sdk/client-kms').then(({ KMSClient }) => built(new KMSClient({ ...common, region: config.awsRegion, ...(config.kmsEndpoint ? { endpoint: config.kmsEndpoint } : {}) })));
      return kms;
    },
  };
}
