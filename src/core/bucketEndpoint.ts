/**
 * `{bucket}` in S3_STORAGE_ENDPOINT_BASE (as LogScale reads it): `https://{bucket}.objects.example.com` addresses
 * each bucket by its own host name, virtual-hosted style, for S3-compatible stores whose names do not follow
 * AWS's. The SDK is given the template with a fixed label in place of `{bucket}` and path-style addressing, so it
 * builds `https://<label>.objects.example.com/<bucket>/<key>`; a middleware then puts the request's bucket in
 * the host and takes it out of the path, before the request is signed (SigV4 signs the host and the path).
 * One client per region keeps serving every bucket; nothing else in the code knows about the template.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { BUCKET_PLACEHOLDER } from './config.ts';

/** The host label the SDK sees in place of `{bucket}`. */
const LABEL = 'bucket-storage-bucket-placeholder';

export function hasBucketPlaceholder(endpoint: string | undefined): endpoint is string {
  return endpoint?.includes(BUCKET_PLACEHOLDER) === true;
}

/** The endpoint the SDK is configured with: the template with a plain label in place of `{bucket}`. */
export function sdkEndpoint(template: string): string {
  return template.replace(BUCKET_PLACEHOLDER, LABEL);
}

interface RequestShape {
  hostname: string;
  path: string;
  port?: number | undefined;
  headers: Record<string, string>;
}

function isRequest(value: unknown): value is RequestShape {
  return typeof value === 'object' && value !== null && 'hostname' in value && typeof value.hostname === 'string' && 'path' in value && typeof value.path === 'string' && 'headers' in value;
}

/** Moves the bucket of every request of `client` from the path into the host name. */
export function addBucketHost(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const bucket = 'Bucket' in args.input && typeof args.input.Bucket === 'string' ? args.input.Bucket : undefined;
      const request = args.request;
      if (bucket !== undefined && isRequest(request) && request.hostname.includes(LABEL)) {
        request.hostname = request.hostname.replace(LABEL, bucket);
        const inPath = `/${bucket}`;
        if (request.path === inPath) request.path = '/';
        else if (request.path.startsWith(`${inPath}/`)) request.path = request.path.slice(inPath.length);
        request.headers.host = request.port === undefined ? request.hostname : `${request.hostname}:${request.port}`;
      }
      return next(args);
    },
    // Before the host header is set (build, low priority) and before signing (finalizeRequest).
    { step: 'build', name: 'bucketStorageBucketHost', priority: 'high' },
  );
}
