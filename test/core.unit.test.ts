/**
 * Small pure parts of src/core, unit by unit: which hosts bypass a proxy, how `{bucket}` endpoints move the
 * bucket into the host name, the deadline's last-resort answer, and the request counters behind the cleanup's and the functions' request statistics. Written for the
 * survivors of the mutation run `s3core` (docs/MUTATION.md).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { addBucketHost, hasBucketPlaceholder, sdkEndpoint } from '../src/core/bucketEndpoint.ts';
import { DEADLINE_MARGIN_MS, stopBeforeDeadline } from '../src/core/deadline.ts';
import { errorFields, textLine } from '../src/core/logger.ts';
import { bypassesProxy } from '../src/core/proxyAgent.ts';
import { isThrottling, RequestStats, type Watchable } from '../src/core/requestStats.ts';

describe('hosts that bypass the proxy', () => {
  it('loopback names and addresses always do, look-alikes do not', () => {
    for (const host of ['localhost', 'LOCALHOST', 'minio.localhost', '127.0.0.1', '127.10.20.30', '127.0.10.1', '127.0.0.10', '::1', '[::1]']) expect(bypassesProxy(host, 443, []), host).toBe(true);
    for (const host of ['localhost.example.com', 'x127.0.0.1', '127.0.0.1.example.com', '128.0.0.1', '::2', 's3.amazonaws.com']) expect(bypassesProxy(host, 443, []), host).toBe(false);
  });

  it('NO_PROXY entries: a host, a domain and its subdomains, a port, an IPv6 address', () => {
    expect(bypassesProxy('s3.internal', 443, ['.internal'])).toBe(true);
    expect(bypassesProxy('internal', 443, ['.internal'])).toBe(true);
    expect(bypassesProxy('s3.internal', 443, ['s3.internal:9000'])).toBe(false);
    expect(bypassesProxy('s3.internal', 9000, ['s3.internal:9000'])).toBe(true);
    expect(bypassesProxy('[fe80::1234:5678:abcd]', 443, ['fe80::1234:5678:abcd'])).toBe(true);
    expect(bypassesProxy('anything', 443, ['*'])).toBe(true);
  });
});

describe('the deadline', () => {
  it('stops the handler 5 s before the deadline; unsettled 4 s later, middy answers with a TimeoutError', async () => {
    expect(stopBeforeDeadline.timeoutEarlyInMillis).toBe(DEADLINE_MARGIN_MS);
    const started = Date.now();
    const answer = stopBeforeDeadline.timeoutEarlyResponse?.();
    await expect(answer).rejects.toMatchObject({ name: 'TimeoutError', message: 'the handler did not stop within 4000 ms of its deadline signal' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_900);
  }, 10_000);
});

describe('request counters', () => {
  it('throttling: 429, 503, or a throttling error name', () => {
    const withStatus = (httpStatusCode: number) => Object.assign(new Error('x'), { $metadata: { httpStatusCode } });
    expect(isThrottling(withStatus(429))).toBe(true);
    expect(isThrottling(withStatus(503))).toBe(true);
    expect(isThrottling(withStatus(500))).toBe(false);
    expect(isThrottling(Object.assign(new Error('slow'), { name: 'SlowDown' }))).toBe(true);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'ThrottlingException' }))).toBe(true);
    expect(isThrottling(Object.assign(new Error('x'), { name: 'NoSuchKey' }))).toBe(false);
    expect(isThrottling({ name: 'SlowDown' })).toBe(false);
  });

  it('count operations, retries and their delay from the SDK metadata, and throttled attempts', async () => {
    type Step = (next: (args: unknown) => Promise<{ output: unknown }>) => (args: unknown) => Promise<{ output: unknown }>;
    const added: { middleware: Step; options: { step: string; name: string; priority: string } }[] = [];
    const client = { middlewareStack: { add: (middleware: Step, options: { step: string; name: string; priority: string }) => added.push({ middleware, options }) } } as unknown as Watchable;
    const stats = new RequestStats();
    stats.watch(client);
    expect(added.map((a) => a.options)).toEqual([
      { step: 'initialize', name: 'bucketStorageRequestStats', priority: 'high' },
      { step: 'deserialize', name: 'bucketStorageThrottleStats', priority: 'high' },
    ]);
    const [initialize, deserialize] = added.map((a) => a.middleware);
    if (initialize === undefined || deserialize === undefined) throw new Error('two middlewares expected');
    await initialize(async () => ({ output: { $metadata: { attempts: 3, totalRetryDelay: 250 } } }))({});
    const failed = Object.assign(new Error('gone'), { $metadata: { attempts: 2, totalRetryDelay: 40 } });
    await expect(
      initialize(async () => {
        throw failed;
      })({}),
    ).rejects.toBe(failed);
    const throttled = Object.assign(new Error('slow'), { name: 'SlowDown' });
    await expect(
      deserialize(async () => {
        throw throttled;
      })({}),
    ).rejects.toBe(throttled);
    await expect(
      deserialize(async () => {
        throw new Error('not found');
      })({}),
    ).rejects.toThrow('not found');
    expect(stats.take()).toEqual({ operations: 2, retries: 3, retryDelayMs: 290, throttles: 1 });
    expect(stats.take()).toEqual({ operations: 0, retries: 0, retryDelayMs: 0, throttles: 0 });
  });
});

describe('{bucket} endpoints', () => {
  it('only an endpoint that holds {bucket} is a per-bucket-host template', () => {
    expect(hasBucketPlaceholder(undefined)).toBe(false);
    expect(hasBucketPlaceholder('https://objects.example.com')).toBe(false);
    expect(hasBucketPlaceholder('https://{bucket}.objects.example.com')).toBe(true);
  });

  it("the request's bucket moves from the path into the host, before signing; other requests pass untouched", async () => {
    type Args = { input: Record<string, unknown>; request: unknown };
    type Step = (next: (args: Args) => Promise<Args>) => (args: Args) => Promise<Args>;
    const added: { middleware: Step; options: object }[] = [];
    addBucketHost({ middlewareStack: { add: (middleware: Step, options: object) => added.push({ middleware, options }) } } as unknown as S3Client);
    expect(added.map((a) => a.options)).toEqual([{ step: 'build', name: 'bucketStorageBucketHost', priority: 'high' }]);
    const middleware = added[0]?.middleware;
    if (middleware === undefined) throw new Error('one middleware expected');
    const host = new URL(sdkEndpoint('http://{bucket}.objects.test:9000')).hostname;
    const send = async (input: Record<string, unknown>, request: unknown) => (await middleware(async (args) => args)({ input, request })).request;
    const request = (path: string, port?: number) => ({ hostname: host, path, port, headers: {} as Record<string, string> });
    expect(await send({ Bucket: 'logs-a' }, request('/logs-a/seg/1', 9000))).toEqual({ hostname: 'logs-a.objects.test', path: '/seg/1', port: 9000, headers: { host: 'logs-a.objects.test:9000' } });
    expect(await send({ Bucket: 'logs-a' }, request('/logs-a'))).toEqual({ hostname: 'logs-a.objects.test', path: '/', port: undefined, headers: { host: 'logs-a.objects.test' } });
    // A path that only starts with the bucket's name is another bucket's: left as it is.
    expect(await send({ Bucket: 'logs-a' }, request('/logs-ab/seg'))).toMatchObject({ hostname: 'logs-a.objects.test', path: '/logs-ab/seg' });
    expect(await send({}, request('/x'))).toEqual(request('/x'));
    expect(await send({ Bucket: 7 }, request('/x'))).toEqual(request('/x'));
    expect(await send({ Bucket: 'logs-a' }, { hostname: host, headers: {} })).toEqual({ hostname: host, headers: {} });
    expect(await send({ Bucket: 'logs-a' }, { hostname: 5, path: '/logs-a', headers: {} })).toEqual({ hostname: 5, path: '/logs-a', headers: {} });
    expect(await send({ Bucket: 'logs-a' }, { hostname: host, path: 5, headers: {} })).toEqual({ hostname: host, path: 5, headers: {} });
    expect(await send({ Bucket: 'logs-a' }, { ...request('/logs-a/k'), hostname: 's3.example.com' })).toMatchObject({ hostname: 's3.example.com', path: '/logs-a/k' });
  });
});

describe('log lines and error fields', () => {
  const AT = new Date(2026, 10, 30, 5, 6, 7);

  it('a text line: time, level (INFO when none), message (empty when none), then the fields that have a value', () => {
    expect(textLine({ level: 'WARN', message: 'm', bucket: 'b', key: undefined, note: 'two words' }, AT)).toBe('05:06:07 WARN  m  bucket=b  note="two words"');
    expect(textLine({ count: 3 }, AT)).toBe('05:06:07 INFO    count=3');
  });

  it('the fields of an error that is not ours: its name and message, or Error and the value', () => {
    expect(errorFields(new RangeError('too big'))).toEqual({ errorName: 'RangeError', errorMessage: 'too big' });
    expect(errorFields('a string')).toEqual({ errorName: 'Error', errorMessage: 'a string' });
  });
});
