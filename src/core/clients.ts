/**
 * The one factory of AWS clients, for every function and the CLI. Static credentials from the configuration
 * take precedence over the default provider chain (the Lambda role). SQS and KMS endpoints come from the
 * SDK's own AWS_ENDPOINT_URL_* variables; S3's from S3_STORAGE_ENDPOINT_BASE. S3 clients are cached per
 * region, because registered buckets may live in other regions than the current one.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:https';
import { Agent as HttpAgent } from 'node:http';
import type { Config } from './config.ts';

export interface Clients {
  /** The S3 client for `region` (default: the current bucket's). */
  s3(region?: string): S3Client;
  readonly sqs: SQSClient;
  /** Loaded on first use: only `kms:` secrets need it, and the module costs cold-start time. */
  kms(): Promise<KMSClient>;
}

/** Retry budget of every client: adaptive back-off absorbs S3 503 SlowDown and throttling. */
export const MAX_ATTEMPTS = 6;

function requestHandler(): NodeHttpHandler {
  const agentOptions = { keepAlive: true, maxSockets: 64 };
  return new NodeHttpHandler({
    httpAgent: new HttpAgent(agentOptions),
    httpsAgent: new Agent(agentOptions),
    connectionTimeout: 5_000,
    requestTimeout: 120_000,
  });
}

export function createClients(config: Config): Clients {
  const credentials = config.credentials && {
    accessKeyId: config.credentials.accessKeyId,
    secretAccessKey: config.credentials.secretAccessKey.reveal(),
  };
  const common = { maxAttempts: MAX_ATTEMPTS, retryMode: 'adaptive', ...(credentials ? { credentials } : {}) } as const;
  const handler = requestHandler();
  const s3ByRegion = new Map<string, S3Client>();
  let sqs: SQSClient | undefined;
  let kms: Promise<KMSClient> | undefined;
  return {
    s3(region = config.region) {
      let client = s3ByRegion.get(region);
      if (client === undefined) {
        client = new S3Client({
          ...common,
          region,
          requestHandler: handler,
          forcePathStyle: config.forcePathStyle,
          ...(config.endpoint ? { endpoint: config.endpoint } : {}),
          // Checksums are computed where S3 supports them and validated on GET where S3 returns them.
          requestChecksumCalculation: 'WHEN_SUPPORTED',
          responseChecksumValidation: 'WHEN_SUPPORTED',
        });
        s3ByRegion.set(region, client);
      }
      return client;
    },
    get sqs() {
      sqs ??= new SQSClient({
        ...common,
        region: config.awsRegion,
        requestHandler: handler,
        // Queue URLs of local servers name hosts that do not resolve: with an endpoint set, use it, not the URL.
        ...(config.sqsEndpoint ? { endpoint: config.sqsEndpoint, useQueueUrlAsEndpoint: false } : {}),
      });
      return sqs;
    },
    kms() {
      kms ??= import('@aws-sdk/client-kms').then(({ KMSClient }) => new KMSClient({ ...common, region: config.awsRegion, requestHandler: handler }));
      return kms;
    },
  };
}
