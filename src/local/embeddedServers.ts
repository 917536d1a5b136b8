/**
 * The embedded local S3 + SQS server (fauxqs 1.9.x, in-process, one port, in memory) used by `npm start`,
 * the tests and the benchmarks. No Docker, no AWS account. See the README for why fauxqs and its limits
 * (no conditional writes, no checksum verification, bodies ≤ ~10 MiB per request).
 */
import { startFauxqs } from 'fauxqs';

export interface QueuePair {
  readonly url: string;
  readonly arn: string;
  readonly dlqUrl: string;
  readonly dlqArn: string;
}

export interface LocalServers {
  /** http://127.0.0.1:<port>: S3 endpoint (path style) and SQS endpoint alike. */
  readonly endpoint: string;
  readonly region: string;
  createBucket(name: string): void;
  /** A queue with a dead-letter queue `<name>-dlq`, redriven after `maxReceiveCount` receives. Its URLs name
   *  sqs.<region>.localhost, which does not resolve: SQS clients reach it through AWS_ENDPOINT_URL_SQS (env()). */
  createQueue(name: string, options?: { maxReceiveCount?: number; visibilityTimeoutSeconds?: number }): QueuePair;
  /** The environment a function or the CLI needs to talk to these servers (credentials are dummies). */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

export async function startLocalServers(options: { port?: number; region?: string } = {}): Promise<LocalServers> {
  const region = options.region ?? 'us-east-1';
  const server = await startFauxqs({ port: options.port ?? 0, logger: false, defaultRegion: region });
  const endpoint = `http://127.0.0.1:${server.port}`;
  return {
    endpoint,
    region,
    createBucket(name) {
      server.createBucket(name);
    },
    createQueue(name, opts = {}) {
      const dlq = server.createQueue(`${name}-dlq`, { attributes: { MessageRetentionPeriod: '1209600' } });
      const queue = server.createQueue(name, {
        attributes: {
          VisibilityTimeout: String(opts.visibilityTimeoutSeconds ?? 60),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount: String(opts.maxReceiveCount ?? 3) }),
        },
      });
      return { url: queue.queueUrl, arn: queue.queueArn, dlqUrl: dlq.queueUrl, dlqArn: dlq.queueArn };
    },
    env() {
      return {
        AWS_REGION: region,
        AWS_ACCESS_KEY_ID: 'local',
        AWS_SECRET_ACCESS_KEY: 'local',
        S3_STORAGE_ACCESSKEY: 'local',
        S3_STORAGE_SECRETKEY: 'local',
        AWS_ENDPOINT_URL_SQS: endpoint,
        S3_STORAGE_ENDPOINT_BASE: endpoint,
        S3_STORAGE_PATH_STYLE_ACCESS: 'true',
        S3_STORAGE_REGION: region,
        // fauxqs refuses request bodies over ~11 MiB: keep parts at 8 MiB locally.
        S3_STORAGE_PART_SIZE_MIB: '8',
      };
    },
    stop: () => server.stop(),
  };
}
