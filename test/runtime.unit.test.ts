/**
 * The process's runtime and what it builds, offline (no state bucket, a plain encryption key: nothing to fetch):
 * the client factory's connection pooling, proxy and S3 addressing choices; the cold start cached once and
 * retried after a failure; the proxy logged without its secret; the metrics middlewares; the deadline's timer
 * that never keeps a CLI run alive. Written for the survivors of the mutation run `s3core2` (docs/MUTATION.md).
 */
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import middy from '@middy/core';
import { Agent as HttpsAgent } from 'node:https';
import type { Agent as HttpAgent } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createClients } from '../src/core/clients.ts';
import { loadConfig } from '../src/core/config.ts';
import { stopBeforeDeadline } from '../src/core/deadline.ts';
import { ConfigError } from '../src/core/errors.ts';
import { functionMetrics } from '../src/core/functionMetrics.ts';
import { logger } from '../src/core/logger.ts';
import { createRuntime, currentRuntime, getRuntime, resetRuntime } from '../src/core/runtime.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';

// As on Lambda: Powertools reads it when the metrics module is loaded, and counts a cold start only then.
vi.hoisted(() => {
  process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
});

const SECRET = 'a-very-secret-encryption-key-0123456789abcdefghijklmnopqrstuvwxyzABCD';
const BASE = { S3_STORAGE_BUCKET: 'logs-bucket', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: SECRET };
const PROXY_PASSWORD = 'proxy-password-42';
const PROXIED = { ...BASE, HTTPS_PROXY: `http://user:${PROXY_PASSWORD}@proxy.example.com:3128`, NO_PROXY: 'a.internal,.b.internal' };

interface HandlerConfig {
  readonly httpsAgent: HttpAgent;
  readonly httpAgentProvider: () => Promise<HttpAgent>;
}
/** The agents a client's request handler sends through. */
async function agentsOf(client: { config: { requestHandler: unknown } }): Promise<{ handler: unknown; https: HttpAgent; http: HttpAgent }> {
  const handler = client.config.requestHandler as NodeHttpHandler;
  // The resolved options (agents) of the handler: private in its types, the one place they are kept.
  const config = await (handler as unknown as { configProvider: Promise<HandlerConfig> }).configProvider;
  return { handler, https: config.httpsAgent, http: await config.httpAgentProvider() };
}

describe('the client factory', () => {
  it('keeps connections alive, up to 64 sockets a host, for http and https', async () => {
    const clients = createClients(loadConfig(BASE));
    for (const client of [clients.sqs, clients.s3()]) {
      const { https, http } = await agentsOf(client);
      for (const agent of [https, http]) {
        expect(agent.maxSockets).toBe(64);
        expect((agent as HttpAgent & { keepAlive: boolean }).keepAlive).toBe(true);
      }
    }
  });

  it('S3 goes through the proxy unless S3_STORAGE_USE_HTTP_PROXY=false; SQS always does', async () => {
    const through = createClients(loadConfig(PROXIED));
    expect((await agentsOf(through.s3())).handler).toBe((await agentsOf(through.sqs)).handler);
    const direct = createClients(loadConfig({ ...PROXIED, S3_STORAGE_USE_HTTP_PROXY: 'false' }));
    const s3 = await agentsOf(direct.s3());
    const sqs = await agentsOf(direct.sqs);
    expect(s3.handler).not.toBe(sqs.handler);
    // The direct agent is a plain https.Agent; the proxied one routes (and is not one).
    expect(s3.https.constructor).toBe(HttpsAgent);
    expect(sqs.https.constructor).not.toBe(HttpsAgent);
  });

  it('S3 addressing is path-style only when asked for, or for a {bucket} endpoint template', async () => {
    expect(createClients(loadConfig(BASE)).s3().config.forcePathStyle).toBe(false);
    expect(createClients(loadConfig({ ...BASE, S3_STORAGE_PATH_STYLE_ACCESS: 'true' })).s3().config.forcePathStyle).toBe(true);
    expect(createClients(loadConfig({ ...BASE, S3_STORAGE_ENDPOINT_BASE: 'https://{bucket}.objects.example.com' })).s3().config.forcePathStyle).toBe(true);
  });
});

describe('the runtime', () => {
  const saved = { ...process.env };
  const setEnv = (env: Record<string, string>) => {
    for (const name of Object.keys(process.env)) if (name.startsWith('S3_STORAGE_') || /^(https?|no)_proxy$/i.test(name)) delete process.env[name];
    Object.assign(process.env, env);
  };
  beforeEach(() => resetRuntime());
  afterEach(() => {
    resetRuntime();
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    vi.restoreAllMocks();
  });

  it('logs the proxy it goes through, without its password', async () => {
    const debug = vi.spyOn(logger, 'debug').mockImplementation(() => undefined);
    const runtime = await createRuntime({ ...PROXIED, S3_STORAGE_USE_HTTP_PROXY: 'false' });
    const description = runtime.config.proxy?.description;
    expect(description).toContain('proxy.example.com:3128');
    expect(description).not.toContain(PROXY_PASSWORD);
    expect(debug).toHaveBeenCalledWith('AWS requests go through an HTTP proxy', { proxy: description, s3: false, noProxy: 'a.internal,.b.internal' });
  });

  it('is created once; once ready, currentRuntime() returns it', async () => {
    setEnv(BASE);
    expect(currentRuntime()).toBeUndefined();
    const first = getRuntime();
    expect(getRuntime()).toBe(first);
    const runtime = await first;
    expect(currentRuntime()).toBe(runtime);
    expect(getRuntime()).toBe(first);
  });

  it('a failed cold start is retried by the next call', async () => {
    setEnv({ ...BASE, S3_STORAGE_BUCKET: '' });
    const failed = getRuntime();
    expect(getRuntime()).toBe(failed);
    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    setEnv(BASE);
    const retried = getRuntime();
    expect(retried).not.toBe(failed);
    expect(currentRuntime()).toBeUndefined();
    await retried;
    expect(currentRuntime()).toBe(await retried);
  });

  it('a cold start that settles after a reset leaves the newer runtime alone', async () => {
    // A failure: the reset's successor stays the process's runtime.
    setEnv({ ...BASE, S3_STORAGE_BUCKET: '' });
    const failed = getRuntime();
    resetRuntime();
    setEnv(BASE);
    const successor = getRuntime();
    await expect(failed).rejects.toBeInstanceOf(ConfigError);
    expect(getRuntime()).toBe(successor);
    await successor;
    // A success: it does not become the current runtime once forgotten.
    resetRuntime();
    const forgotten = getRuntime();
    resetRuntime();
    await forgotten;
    expect(currentRuntime()).toBeUndefined();
  });

  it("the metrics middlewares flush a ColdStart metric and the invocation's SDK request counts", async () => {
    setEnv(BASE);
    await getRuntime();
    const chunks: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (chunks.push(String(chunk)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const handler = middy(async () => 'done').use(functionMetrics('upload'));
    expect(await handler({}, lambdaContext('upload'))).toBe('done');
    vi.restoreAllMocks();
    const lines = chunks.join('').split('\n').filter((l) => l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => 'ColdStart' in l)).toMatchObject({ ColdStart: 1, function_name: 'bucket-storage-upload' });
    expect(lines.find((l) => 'SdkRequests' in l)).toMatchObject({ function: 'upload', SdkRequests: 0, SdkRetries: 0, SdkThrottles: 0, SdkRetryDelay: 0 });
  });
});

describe('the deadline', () => {
  it('the last-resort timer does not keep the process alive (a CLI run that ends sooner exits)', () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    // It rejects 4 s later, after this test: caught here.
    Promise.resolve(stopBeforeDeadline.timeoutEarlyResponse?.()).catch(() => undefined);
    expect(timers()).toBe(before);
  });
});
