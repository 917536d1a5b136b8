// Edges of the configuration loader that the mutation run of src/core/config.ts (docs/MUTATION.md, run
// `config`) showed untested: the defaults, boundaries, where an error is attributed, LOG_LEVEL/LOG_FORMAT,
// the endpoint placeholder, the proxy variables and the endpoints of the SQS and KMS clients.
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { loadConfig } from '../src/core/config.ts';
import { configError } from './support/configError.ts';

const SECRET = 'a-very-secret-encryption-key-0123456789abcdefghijklmnopqrstuvwxyzABCD';
const BASE = { S3_STORAGE_BUCKET: 'logs-bucket', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: SECRET };
/** Long enough for the key rules, and free of the weak-key patterns. */
const long = (head: string) => `${head}Q7vK2pX9mZ4rT8wY1nB6cF3hJ5sD0gL7aE2uI9oP4kR8tW1yV6xN3bM5`;

describe('config: defaults', () => {
  it('leaves every optional setting at its documented default', () => {
    const c = loadConfig(BASE);
    expect(c.previousKeys).toEqual([]);
    expect(c.keyPrefix).toBe('');
    expect(c.forcePathStyle).toBe(false);
    expect(c.ephemeralDisks).toBe(false);
    expect(c.cleanupDryRun).toBe(false);
    expect(c.sizeLogger).toEqual({ enabled: true, intervalMinutes: 60 });
    expect(c.transferConcurrency).toBe(4);
    expect(c.restoreConcurrency).toBe(1);
    expect(c.partSize).toBe(16 * 1024 * 1024);
    expect(c.proxy).toBeUndefined();
    expect(c.logLevel).toBeUndefined();
    expect(c.logFormat).toBeUndefined();
    expect(c.sqsEndpoint).toBeUndefined();
    expect(c.kmsEndpoint).toBeUndefined();
    expect(c.awsRegion).toBe('eu-west-1');
    expect(c.notices).toEqual([]);
  });

  it('an empty value counts as unset', () => {
    const c = loadConfig({ ...BASE, S3_STORAGE_KMS_KEY_ARN: '', S3_STORAGE_PART_SIZE_MIB: '', HTTPS_PROXY: '' });
    expect(c.kmsKeyArn).toBeUndefined();
    expect(c.partSize).toBe(16 * 1024 * 1024);
    expect(c.proxy).toBeUndefined();
  });
});

describe('config: values at their edges', () => {
  it('booleans: 1 and 0 as well as true and false, in any of the listed cases', () => {
    expect(loadConfig({ ...BASE, S3_STORAGE_CLEANUP_DRY_RUN: '1' }).cleanupDryRun).toBe(true);
    expect(loadConfig({ ...BASE, S3_STORAGE_CLEANUP_DRY_RUN: 'True' }).cleanupDryRun).toBe(true);
    expect(loadConfig({ ...BASE, S3_STORAGE_CLEANUP_DRY_RUN: '0' }).cleanupDryRun).toBe(false);
  });

  it('whole numbers: both ends of the range are accepted, one past either end is refused', () => {
    expect(loadConfig({ ...BASE, S3_STORAGE_TRANSFER_CONCURRENCY: '64' }).transferConcurrency).toBe(64);
    expect(loadConfig({ ...BASE, S3_STORAGE_TRANSFER_CONCURRENCY: '1' }).transferConcurrency).toBe(1);
    expect(configError({ ...BASE, S3_STORAGE_TRANSFER_CONCURRENCY: '65' }).message).toContain('is out of range; expected 1..64 parts in flight');
  });

  it('credentials count only in the authority of a URL, not further on', () => {
    const endpoint = 'http://127.0.0.1:9000/?next=http://user:pass@elsewhere';
    expect(loadConfig({ ...BASE, S3_STORAGE_ENDPOINT_BASE: endpoint }).endpoint).toBe(endpoint);
    const err = configError({ ...BASE, S3_STORAGE_SEGMENTS_QUEUE_URL: 'https://user:Zq9secretpw@sqs.eu-west-1.amazonaws.com/1/q' });
    expect(err.message).toContain('holds credentials');
    expect(err.message).toContain('https://[credentials hidden]@sqs.eu-west-1.amazonaws.com/1/q');
    expect(err.message).not.toContain('Zq9secretpw');
    // Anywhere in a refused value, not only at its start.
    const inside = configError({ ...BASE, S3_STORAGE_DELETIONS_QUEUE_URL: 'queue at https://user:Zq9secretpw@sqs.example.com/q' });
    expect(inside.message).toContain('queue at https://[credentials hidden]@sqs.example.com/q');
    expect(inside.message).not.toContain('Zq9secretpw');
  });

  it('kms: secrets are taken as written (checked once decrypted); near-misses of the prefix are refused', () => {
    const c = loadConfig({ ...BASE, S3_STORAGE_ENCRYPTION_KEY: 'kms:AQID' });
    expect(c.encryption.mode).toBe('on');
    for (const nearMiss of [' kms:AQID', 'KMS:AQID', 'kms :AQID']) {
      expect(configError({ ...BASE, S3_STORAGE_ENCRYPTION_KEY: nearMiss }).message).toContain('looks like a kms: secret but does not start with exactly kms:');
    }
    // Secrets that merely contain "kms" and a colon are secrets like any other.
    for (const secret of [long('my-kms:'), long('xkms:'), long('kmsx:')]) expect(loadConfig({ ...BASE, S3_STORAGE_ENCRYPTION_KEY: secret }).encryption.mode).toBe('on');
  });

  it('KMS ARNs: an alias in another partition is named an alias; a value that only contains an alias ARN is not an ARN', () => {
    expect(configError({ ...BASE, S3_STORAGE_KMS_KEY_ARN: 'arn:aws-cn:kms:cn-north-1:123456789012:alias/logs' }).message).toContain('is an alias ARN');
    const err = configError({ ...BASE, S3_STORAGE_KMS_KEY_ARN: 'xarn:aws:kms:eu-west-1:123456789012:alias/logs' });
    expect(err.message).toContain('is not a KMS key ARN');
    expect(err.message).not.toContain('alias ARN');
  });

  it('previous keys: a JSON array after spaces, and each refusal says what is wrong', () => {
    const a = long('old-a-');
    const b = long('old-b-');
    expect(loadConfig({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `  ${JSON.stringify([a, b])}` }).previousKeys.map((k) => k.reveal())).toEqual([a, b]);
    const cases: [string, string][] = [
      [`[${JSON.stringify(a)}`, 'starts with [ but is not a JSON array'],
      [`[${JSON.stringify(a)}, 7]`, 'holds a non-string entry'],
      [`${a},,${b}`, 'entry 2 is empty'],
      [`${a},off`, 'entry 2 is "off", which is no key'],
    ];
    for (const [value, problem] of cases) {
      const err = configError({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: value });
      expect(err.variable).toBe('S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS');
      expect(err.message).toContain(problem);
      expect(err.message).not.toContain(a);
    }
  });
});

describe('config: where an error is attributed', () => {
  it('a bad value set through a LogScale alias names the alias', () => {
    const err = configError({ ...BASE, S3_STORAGE_MAX_CONCURRENT_UPLOADS: '0' });
    expect(err.variable).toBe('S3_STORAGE_MAX_CONCURRENT_UPLOADS');
    expect(err.message).toMatch(/^S3_STORAGE_MAX_CONCURRENT_UPLOADS="0": is out of range/);
  });

  it('with both our name and its alias set, a bad value of ours names ours; a missing variable is never blamed on an alias', () => {
    const ours = configError({ ...BASE, S3_STORAGE_TRANSFER_CONCURRENCY: '0', S3_STORAGE_MAX_CONCURRENT_UPLOADS: '4' });
    expect(ours.variable).toBe('S3_STORAGE_TRANSFER_CONCURRENCY');
    const { S3_STORAGE_REGION: _region, ...withoutRegion } = BASE;
    const missing = configError({ ...withoutRegion, S3_STORAGE_MAX_CONCURRENT_UPLOADS: '4' });
    expect(missing.variable).toBe('S3_STORAGE_REGION');
    expect(missing.message).toBe('S3_STORAGE_REGION is not set; it is required');
  });

  it('an unknown variable lists the known ones; a required one set empty is "not set"', () => {
    const unknown = configError({ ...BASE, S3_STORAGE_BUKET: 'x' });
    expect(unknown.message).toContain('S3_STORAGE_BUKET is not a known variable (a typo?); known: S3_STORAGE_BUCKET, S3_STORAGE_REGION, ');
    const empty = configError({ ...BASE, S3_STORAGE_BUCKET: '' });
    expect(empty.variable).toBe('S3_STORAGE_BUCKET');
    expect(empty.message).toBe('S3_STORAGE_BUCKET is not set; it is required');
  });

  it('a refused value keeps the schema error as its cause', () => {
    const err = configError({ ...BASE, S3_STORAGE_REGION: 'EU WEST' });
    expect(err.cause).toBeInstanceOf(z.ZodError);
  });

  it('a staging bucket that is also the state bucket is an error of S3_STORAGE_STAGING_BUCKET', () => {
    expect(configError({ ...BASE, S3_STORAGE_STATE_BUCKET: 'state-b', S3_STORAGE_STAGING_BUCKET: 'state-b' }).variable).toBe('S3_STORAGE_STAGING_BUCKET');
  });
});

describe('config: LOG_LEVEL and LOG_FORMAT', () => {
  it('LOG_LEVEL in any case; anything else names the levels', () => {
    expect(loadConfig({ ...BASE, LOG_LEVEL: 'debug' }).logLevel).toBe('DEBUG');
    expect(loadConfig({ ...BASE, LOG_LEVEL: '' }).logLevel).toBeUndefined();
    const err = configError({ ...BASE, LOG_LEVEL: 'loud' });
    expect(err.variable).toBe('LOG_LEVEL');
    expect(err.message).toBe('LOG_LEVEL="loud" is not a log level; expected one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL, SILENT');
  });

  it('LOG_FORMAT json or text in any case; anything else is refused', () => {
    expect(loadConfig({ ...BASE, LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(loadConfig({ ...BASE, LOG_FORMAT: 'text' }).logFormat).toBe('text');
    const err = configError({ ...BASE, LOG_FORMAT: 'xml' });
    expect(err.variable).toBe('LOG_FORMAT');
    expect(err.message).toBe('LOG_FORMAT="xml" is not a log format; expected json or text');
  });
});

describe('config: {bucket} in S3_STORAGE_ENDPOINT_BASE', () => {
  it('stands once, in the host name, and not with path-style access', () => {
    expect(loadConfig({ ...BASE, S3_STORAGE_ENDPOINT_BASE: 'https://{bucket}.objects.example.com' }).endpoint).toBe('https://{bucket}.objects.example.com');
    for (const endpoint of ['https://{bucket}.{bucket}.example.com', 'https://objects.example.com/{bucket}']) {
      const err = configError({ ...BASE, S3_STORAGE_ENDPOINT_BASE: endpoint });
      expect(err.variable).toBe('S3_STORAGE_ENDPOINT_BASE');
      expect(err.message).toContain('{bucket} may stand once, in the host name');
    }
    const err = configError({ ...BASE, S3_STORAGE_ENDPOINT_BASE: 'https://{bucket}.objects.example.com', S3_STORAGE_PATH_STYLE_ACCESS: 'true' });
    expect(err.variable).toBe('S3_STORAGE_PATH_STYLE_ACCESS');
    expect(err.message).toContain('contradicts {bucket}');
    expect(loadConfig({ ...BASE, S3_STORAGE_ENDPOINT_BASE: 'https://{bucket}.objects.example.com', S3_STORAGE_PATH_STYLE_ACCESS: 'false' }).forcePathStyle).toBe(false);
  });
});

describe('config: the proxy', () => {
  it('HTTPS_PROXY and HTTP_PROXY (either case), without a scheme taken as http://; NO_PROXY cleaned', () => {
    const both = loadConfig({ ...BASE, https_proxy: 'secure.example.com:3129', HTTP_PROXY: 'http://plain.example.com:3128', no_proxy: ' Internal.Example.com, ,.svc ' });
    expect(both.proxy?.https?.reveal()).toBe('http://secure.example.com:3129/');
    expect(both.proxy?.http?.reveal()).toBe('http://plain.example.com:3128/');
    expect(both.proxy?.description).toBe('https via secure.example.com:3129, http via plain.example.com:3128');
    expect(both.proxy?.noProxy).toEqual(['internal.example.com', '.svc']);
    expect(both.proxy?.forS3).toBe(true);
    const httpOnly = loadConfig({ ...BASE, http_proxy: 'http://plain.example.com:3128', NO_PROXY: 'a.example.com' });
    expect(httpOnly.proxy?.https).toBeUndefined();
    expect(httpOnly.proxy?.description).toBe('http via plain.example.com:3128');
    expect(httpOnly.proxy?.noProxy).toEqual(['a.example.com']);
    const noNoProxy = loadConfig({ ...BASE, HTTPS_PROXY: 'https://secure.example.com' });
    expect(noNoProxy.proxy?.https?.reveal()).toBe('https://secure.example.com/');
    expect(noNoProxy.proxy?.noProxy).toEqual([]);
  });

  it('refuses a proxy that is not http(s), or no URL at all, without echoing it', () => {
    const err = configError({ ...BASE, HTTPS_PROXY: 'socks5://user:Zq9secretpw@proxy:1080' });
    expect(err.variable).toBe('HTTPS_PROXY');
    expect(err.message).toContain('is a socks5: URL');
    expect(err.message).not.toContain('Zq9secretpw');
    const bad = configError({ ...BASE, HTTP_PROXY: 'http://[Zq9secretpw' });
    expect(bad.variable).toBe('HTTP_PROXY');
    expect(bad.message).toBe('HTTP_PROXY (value hidden) is not a proxy URL; expected a form like http://proxy.example.com:3128');
  });

  it('HTTP_PROXY_HOST wins over each of the usual proxy variables, naming the one it overrides', () => {
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) {
      const c = loadConfig({ ...BASE, HTTP_PROXY_HOST: 'proxy.example.com', HTTP_PROXY_PORT: '3128', [name]: 'http://other.example.com:1' });
      expect(c.notices).toEqual([`${name} is not used: LogScale's HTTP_PROXY_HOST is set and wins`]);
    }
  });

  it("LogScale's HTTP_PROXY_HOST needs its port, takes its credentials and wins over HTTPS_PROXY with a notice", () => {
    const err = configError({ ...BASE, HTTP_PROXY_HOST: 'proxy.example.com' });
    expect(err.variable).toBe('HTTP_PROXY_PORT');
    expect(err.message).toBe('HTTP_PROXY_PORT is not set; HTTP_PROXY_HOST needs it (e.g. 3128)');
    const c = loadConfig({ ...BASE, HTTP_PROXY_HOST: 'proxy.example.com', HTTP_PROXY_PORT: '3128', HTTP_PROXY_USERNAME: 'ops', HTTP_PROXY_PASSWORD: 'pw', HTTPS_PROXY: 'http://other:1' });
    expect(c.proxy?.https?.reveal()).toBe('http://ops:pw@proxy.example.com:3128/');
    expect(c.proxy?.http?.reveal()).toBe('http://ops:pw@proxy.example.com:3128/');
    expect(c.notices).toContain("HTTPS_PROXY is not used: LogScale's HTTP_PROXY_HOST is set and wins");
    expect(loadConfig({ ...BASE, HTTP_PROXY_HOST: 'proxy.example.com', HTTP_PROXY_PORT: '3128' }).proxy?.https?.reveal()).toBe('http://proxy.example.com:3128/');
  });
});

describe('config: endpoints and region of the SQS and KMS clients', () => {
  it('AWS_ENDPOINT_URL_SQS / _KMS, else AWS_ENDPOINT_URL; AWS_REGION, else the bucket region', () => {
    const shared = loadConfig({ ...BASE, AWS_ENDPOINT_URL: 'http://127.0.0.1:4566', AWS_REGION: 'us-east-2' });
    expect(shared.sqsEndpoint).toBe('http://127.0.0.1:4566');
    expect(shared.kmsEndpoint).toBe('http://127.0.0.1:4566');
    expect(shared.awsRegion).toBe('us-east-2');
    const own = loadConfig({ ...BASE, AWS_ENDPOINT_URL: 'http://127.0.0.1:4566', AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:9324', AWS_ENDPOINT_URL_KMS: 'http://127.0.0.1:5000' });
    expect(own.sqsEndpoint).toBe('http://127.0.0.1:9324');
    expect(own.kmsEndpoint).toBe('http://127.0.0.1:5000');
    const sqsOnly = loadConfig({ ...BASE, AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:9324' });
    expect(sqsOnly.sqsEndpoint).toBe('http://127.0.0.1:9324');
    expect(sqsOnly.kmsEndpoint).toBeUndefined();
  });
});
