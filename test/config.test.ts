import type { KMSClient } from '@aws-sdk/client-kms';
import { inspect } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { createClients } from '../src/core/clients.ts';
import { CONFIG_VARIABLES, loadConfig } from '../src/core/config.ts';
import { kmsSecretResolver } from '../src/core/encryptionKeys.ts';
import { configError } from './support/configError.ts';
import { logger } from '../src/core/logger.ts';
import { Secret } from '../src/core/secret.ts';

const SECRET = 'a-very-secret-encryption-key-0123456789abcdefghijklmnopqrstuvwxyzABCD';
const OLD_1 = 'old-key-1-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU';
const OLD_2 = 'old,key-2-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU';
const BASE = { S3_STORAGE_BUCKET: 'logs-bucket', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: SECRET };

/** Per variable: a good value, a bad value, and (for the good one) what the config must then hold. */
const CASES: Record<string, { good: string; bad: string; check?: (c: ReturnType<typeof loadConfig>) => void }> = {
  S3_STORAGE_BUCKET: { good: 'my.logs-2026', bad: 'My_Bucket', check: (c) => expect(c.bucket).toBe('my.logs-2026') },
  S3_STORAGE_REGION: { good: 'ap-southeast-2', bad: 'EU WEST', check: (c) => expect(c.region).toBe('ap-southeast-2') },
  S3_STORAGE_ENCRYPTION_KEY: { good: 'off', bad: '', check: (c) => expect(c.encryption.mode).toBe('off') },
  S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: { good: JSON.stringify([OLD_1, OLD_2]), bad: `["${OLD_1}", 3]`, check: (c) => expect(c.previousKeys.map((k) => k.reveal())).toEqual([OLD_1, OLD_2]) },
  S3_STORAGE_KMS_KEY_ARN: { good: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab', bad: 'alias/mine', check: (c) => expect(c.kmsKeyArn).toMatch(/^arn:aws:kms/) },
  S3_STORAGE_OBJECT_KEY_PREFIX: { good: '/cluster-a/logs/', bad: 'a/../b', check: (c) => expect(c.keyPrefix).toBe('cluster-a/logs/') },
  S3_STORAGE_ACCESSKEY: { good: 'AKIAEXAMPLE123', bad: 'has space' },
  S3_STORAGE_SECRETKEY: { good: 'wJalrXUtnFEMI/K7MDENG', bad: '' },
  S3_STORAGE_ENDPOINT_BASE: { good: 'http://127.0.0.1:9000', bad: 'ftp://host', check: (c) => expect(c.endpoint).toBe('http://127.0.0.1:9000') },
  S3_STORAGE_PATH_STYLE_ACCESS: { good: 'true', bad: 'yes', check: (c) => expect(c.forcePathStyle).toBe(true) },
  USING_EPHEMERAL_DISKS: { good: 'TRUE', bad: 'maybe', check: (c) => expect(c.ephemeralDisks).toBe(true) },
  S3_STORAGE_STATE_BUCKET: { good: 'state-bucket', bad: 'x', check: (c) => expect(c.stateBucket).toBe('state-bucket') },
  S3_STORAGE_SEGMENTS_QUEUE_URL: { good: 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments', bad: 'segments', check: (c) => expect(c.segmentsQueueUrl).toContain('segments') },
  S3_STORAGE_DELETIONS_QUEUE_URL: { good: 'https://sqs.eu-west-1.amazonaws.com/123456789012/deletions', bad: 'not a url', check: (c) => expect(c.deletionsQueueUrl).toContain('deletions') },
  S3_STORAGE_SEGMENTS_DLQ_URL: { good: 'https://sqs.eu-west-1.amazonaws.com/123456789012/segments-dlq', bad: 'dlq', check: (c) => expect(c.segmentsDlqUrl).toContain('segments-dlq') },
  S3_STORAGE_SOURCE_ROOT: { good: '/mnt/segments', bad: 'relative/dir', check: (c) => expect(c.sourceRoot).toBe('/mnt/segments') },
  S3_STORAGE_RESTORE_ROOT: { good: '/mnt/restore', bad: './restore', check: (c) => expect(c.restoreRoot).toBe('/mnt/restore') },
  S3_STORAGE_STAGING_BUCKET: { good: 'staging-bucket', bad: 'Staging_Bucket', check: (c) => expect(c.staging).toEqual({ bucket: 'staging-bucket', region: 'eu-west-1', deleteAfterUpload: false }) },
  S3_STORAGE_STAGING_REGION: { good: 'eu-central-1', bad: 'EU CENTRAL', check: (c) => expect(c.staging?.region).toBe('eu-central-1') },
  S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: { good: 'true', bad: 'later', check: (c) => expect(c.staging?.deleteAfterUpload).toBe(true) },
  S3_STORAGE_CHUNK_LOG2: { good: '16', bad: '25', check: (c) => expect(c.chunkLog2).toBe(16) },
  S3_STORAGE_PART_SIZE_MIB: { good: '64', bad: '4', check: (c) => expect(c.partSize).toBe(64 * 1024 * 1024) },
  S3_STORAGE_TRANSFER_CONCURRENCY: { good: '8', bad: '0', check: (c) => expect(c.transferConcurrency).toBe(8) },
  S3_STORAGE_RESTORE_CONCURRENCY: { good: '4', bad: 'four', check: (c) => expect(c.restoreConcurrency).toBe(4) },
  S3_STORAGE_CLEANUP_DRY_RUN: { good: 'true', bad: 'dry', check: (c) => expect(c.cleanupDryRun).toBe(true) },
  S3_STORAGE_PLAIN_OBJECTS_BEFORE: { good: '2026-11-25T04:00:00Z', bad: 'last tuesday', check: (c) => expect(c.plainObjectsBefore?.toISOString()).toBe('2026-11-25T04:00:00.000Z') },
  BUCKET_STORAGE_SIZE_LOGGER_ENABLED: { good: 'false', bad: 'off', check: (c) => expect(c.sizeLogger.enabled).toBe(false) },
  BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES: { good: '15', bad: '0', check: (c) => expect(c.sizeLogger.intervalMinutes).toBe(15) },
  S3_STORAGE_USE_HTTP_PROXY: { good: 'false', bad: 'no', check: (c) => expect(c.proxy?.forS3).toBe(false) },
  HTTP_PROXY_HOST: { good: 'proxy.example.com', bad: 'http://proxy:3128', check: (c) => expect(c.proxy?.description).toBe('HTTP_PROXY_HOST proxy.example.com:3128') },
  HTTP_PROXY_PORT: { good: '3128', bad: '70000' },
  HTTP_PROXY_USERNAME: { good: 'ops', bad: '' },
  HTTP_PROXY_PASSWORD: { good: 'proxy-secret', bad: '' },
  S3_STORAGE_DELETION_DELAY_HOURS: { good: '0', bad: '721', check: (c) => expect(c.deletionDelayHours).toBe(0) },
  S3_STORAGE_UPLOAD_TIMEOUT_SECONDS: { good: '300', bad: '0', check: (c) => expect(c.uploadTimeoutSeconds).toBe(300) },
};

/** Variables that only make sense in pairs get their partner. */
function withPartner(name: string, value: string): Record<string, string> {
  if (name === 'S3_STORAGE_ACCESSKEY') return { [name]: value, S3_STORAGE_SECRETKEY: 'partner-secret' };
  if (name === 'S3_STORAGE_SECRETKEY') return { [name]: value, S3_STORAGE_ACCESSKEY: 'AKIAPARTNER' };
  if (name === 'S3_STORAGE_STAGING_REGION' || name === 'S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD') return { [name]: value, S3_STORAGE_STAGING_BUCKET: 'staging-bucket' };
  if (name === 'S3_STORAGE_USE_HTTP_PROXY') return { [name]: value, HTTPS_PROXY: 'http://proxy.example.com:3128' };
  if (name === 'HTTP_PROXY_HOST') return { [name]: value, HTTP_PROXY_PORT: '3128' };
  if (name === 'HTTP_PROXY_USERNAME') return { [name]: value, HTTP_PROXY_PASSWORD: 'partner-secret', HTTP_PROXY_HOST: 'proxy', HTTP_PROXY_PORT: '3128' };
  if (name === 'HTTP_PROXY_PASSWORD') return { [name]: value, HTTP_PROXY_USERNAME: 'partner', HTTP_PROXY_HOST: 'proxy', HTTP_PROXY_PORT: '3128' };
  return { [name]: value };
}

describe('config', () => {
  it('has a case for every variable it knows', () => {
    expect(Object.keys(CASES).sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  for (const name of CONFIG_VARIABLES) {
    const c = CASES[name]!;
    it(`${name}: a good value is accepted`, () => {
      const config = loadConfig({ ...BASE, ...withPartner(name, c.good) });
      c.check?.(config);
    });
    it(`${name}: a bad value fails naming the variable, without echoing secrets`, () => {
      const err = configError({ ...BASE, ...withPartner(name, c.bad) });
      expect(err.variable).toBe(name);
      expect(err.message).toContain(name);
      expect(err.message).not.toContain(SECRET);
      const secret = ['S3_STORAGE_ENCRYPTION_KEY', 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS', 'S3_STORAGE_SECRETKEY', 'HTTP_PROXY_PASSWORD'].includes(name);
      if (secret && c.bad !== '') expect(err.message).not.toContain(c.bad);
    });
  }

  it('required variables are named when missing', () => {
    for (const name of ['S3_STORAGE_BUCKET', 'S3_STORAGE_REGION', 'S3_STORAGE_ENCRYPTION_KEY']) {
      const env: Record<string, string> = { ...BASE };
      delete env[name];
      const err = configError(env);
      expect(err.variable).toBe(name);
      expect(err.message).toMatch(/not set.*required/);
    }
  });

  it('refuses an unknown S3_STORAGE_ variable (a typo) and ignores unrelated ones', () => {
    expect(configError({ ...BASE, S3_STORAGE_BUKET: 'x' }).variable).toBe('S3_STORAGE_BUKET');
    expect(() => loadConfig({ ...BASE, PATH: '/usr/bin', AWS_REGION: 'eu-west-1' })).not.toThrow();
  });

  it('static credentials go together', () => {
    expect(configError({ ...BASE, S3_STORAGE_ACCESSKEY: 'AKIAONLY' }).variable).toBe('S3_STORAGE_SECRETKEY');
    expect(configError({ ...BASE, S3_STORAGE_SECRETKEY: 'only-secret' }).variable).toBe('S3_STORAGE_ACCESSKEY');
  });

  it('KMS alias ARNs are refused with what to give instead (a grant on an alias does not authorise the key)', () => {
    const err = configError({ ...BASE, S3_STORAGE_KMS_KEY_ARN: 'arn:aws:kms:eu-west-1:123456789012:alias/logs' });
    expect(err.variable).toBe('S3_STORAGE_KMS_KEY_ARN');
    expect(err.message).toContain('is an alias ARN');
    expect(err.message).toContain('aws kms describe-key');
  });

  it('staging: its region and delete-after-upload need the bucket; it is neither the current nor the state bucket', () => {
    expect(configError({ ...BASE, S3_STORAGE_STAGING_REGION: 'eu-central-1' }).message).toMatch(/S3_STORAGE_STAGING_REGION is set but S3_STORAGE_STAGING_BUCKET is not/);
    expect(configError({ ...BASE, S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: 'true' }).variable).toBe('S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD');
    expect(configError({ ...BASE, S3_STORAGE_STAGING_BUCKET: 'logs-bucket' }).message).toMatch(/is also S3_STORAGE_BUCKET/);
    expect(configError({ ...BASE, S3_STORAGE_STATE_BUCKET: 'state-b', S3_STORAGE_STAGING_BUCKET: 'state-b' }).message).toMatch(/is also S3_STORAGE_STATE_BUCKET/);
    expect(loadConfig(BASE).staging).toBeUndefined();
  });

  it('previous keys: a JSON array or a comma-separated list, never "off"', () => {
    expect(loadConfig({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `${OLD_1},${SECRET}` }).previousKeys.map((k) => k.reveal())).toEqual([OLD_1, SECRET]);
    expect(configError({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `${OLD_1},off` }).variable).toBe('S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS');
    expect(configError({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: '[broken' }).variable).toBe('S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS');
  });

  describe('weak keys are refused, naming the variable and the rule, never the key', () => {
    const short = 'x'.repeat(31);
    const cases: [string, string, RegExp][] = [
      ['OFF', 'OFF', /spelling of "off"/],
      ['Off', 'Off', /spelling of "off"/],
      ['" off "', ' off ', /spelling of "off"/],
      ['off and a newline', 'off\n', /spelling of "off"/],
      ['quoted off', "'off'", /spelling of "off"/],
      ['x', 'x', /shorter than 32 characters/],
      ['31 characters', short, /shorter than 32 characters/],
      ['a key with a trailing space', `${SECRET} `, /whitespace/],
      ['a key with a leading tab', `\t${SECRET}`, /whitespace/],
      ['a misspelt kms: prefix', `KMS:${'A'.repeat(40)}`, /kms:/],
    ];
    it.each(cases)('S3_STORAGE_ENCRYPTION_KEY = %s', (_name, value, rule) => {
      const err = configError({ ...BASE, S3_STORAGE_ENCRYPTION_KEY: value });
      expect(err.variable).toBe('S3_STORAGE_ENCRYPTION_KEY');
      expect(err.message).toMatch(/^S3_STORAGE_ENCRYPTION_KEY \(value hidden\): /);
      expect(err.message).toMatch(rule);
      if (value.trim().length > 3) expect(err.message).not.toContain(value.trim());
    });
    it.each(cases)('S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS entry = %s (JSON and comma forms alike)', (_name, value, rule) => {
      for (const list of [JSON.stringify([OLD_1, value]), `${OLD_1},${value}`]) {
        const err = configError({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: list });
        expect(err.variable).toBe('S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS');
        expect(err.message).toMatch(/entry 2 /);
        expect(err.message).toMatch(rule);
        if (value.trim().length > 3) expect(err.message).not.toContain(value.trim());
      }
    });
    it('spaces around commas are refused like any surrounding whitespace; 32 characters and exactly off are accepted', () => {
      expect(configError({ ...BASE, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `${OLD_1}, ${OLD_2}` }).message).toMatch(/entry 2 begins or ends with whitespace/);
      expect(loadConfig({ ...BASE, S3_STORAGE_ENCRYPTION_KEY: 'y'.repeat(32) }).encryption.mode).toBe('on');
      expect(loadConfig({ ...BASE, S3_STORAGE_ENCRYPTION_KEY: 'off' }).encryption.mode).toBe('off');
    });
    it('a kms: secret is held to the same rules once decrypted, and warned about below 64 characters', async () => {
      const resolve = (plaintext: string) => kmsSecretResolver(async () => ({ send: async () => ({ Plaintext: Buffer.from(plaintext) }) }) as unknown as KMSClient);
      const kms = new Secret('kms:AQICAHh0ZXN0');
      await expect(resolve('Off')(kms, 'S3_STORAGE_ENCRYPTION_KEY')).rejects.toThrow(/S3_STORAGE_ENCRYPTION_KEY: the secret its kms: value decrypts to is a spelling of "off"/);
      await expect(resolve(`${SECRET}\n`)(kms, 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS')).rejects.toMatchObject({ variable: 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS', message: expect.stringMatching(/whitespace/) });
      const warn = vi.spyOn(logger, 'warn').mockImplementation(() => undefined);
      try {
        await expect(resolve('z'.repeat(40))(kms, 'S3_STORAGE_ENCRYPTION_KEY')).resolves.toBe('z'.repeat(40));
        await expect(resolve(SECRET)(new Secret(SECRET), 'S3_STORAGE_ENCRYPTION_KEY')).resolves.toBe(SECRET);
        expect(warn.mock.calls.map((c) => c[0])).toEqual(['S3_STORAGE_ENCRYPTION_KEY: the secret its kms: value decrypts to is shorter than the 64 random characters suggested']);
      } finally {
        warn.mockRestore();
      }
    });
  });

  it('credentials inside an endpoint URL are refused and never echoed', () => {
    for (const [name, value] of [
      ['S3_STORAGE_ENDPOINT_BASE', 'http://AKIAUSER:hunter2-secret@127.0.0.1:9000'],
      ['S3_STORAGE_ENDPOINT_BASE', 'ftp://AKIAUSER:hunter2-secret@host'],
      ['S3_STORAGE_SEGMENTS_QUEUE_URL', 'https://me:hunter2-secret@sqs.eu-west-1.amazonaws.com/123456789012/q'],
    ] as const) {
      const err = configError({ ...BASE, [name]: value });
      expect(err.variable).toBe(name);
      expect(err.message).toMatch(/credentials/);
      expect(err.message).not.toContain('hunter2-secret');
      expect(err.message).not.toContain('AKIAUSER');
    }
  });

  it('the config is frozen and never prints a secret', () => {
    const config = loadConfig({ ...BASE, S3_STORAGE_ACCESSKEY: 'AKIAX1', S3_STORAGE_SECRETKEY: 'the-secret-access-key', S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: 'old-secret-key-0123456789abcdefghijklmnopqrstuvwxyz' });
    expect(Object.isFrozen(config)).toBe(true);
    for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config.encryption.mode === 'on' && config.encryption.current)]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('the-secret-access-key');
      expect(text).not.toContain('old-secret-key');
    }
  });

  it('static credentials sign the data buckets only; SQS, KMS and the deployment\'s own buckets use the default chain', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'AKIAFROMENV';
    process.env.AWS_SECRET_ACCESS_KEY = 'from-env';
    try {
      const config = loadConfig({ ...BASE, S3_STORAGE_ACCESSKEY: 'AKIASTATIC', S3_STORAGE_SECRETKEY: 'static-secret' });
      const clients = createClients(config);
      for (const client of [clients.s3(), clients.s3('us-west-2')]) expect(await client.config.credentials()).toMatchObject({ accessKeyId: 'AKIASTATIC', secretAccessKey: 'static-secret' });
      for (const client of [clients.s3AsRole(), clients.sqs, await clients.kms()]) expect(await client.config.credentials()).toMatchObject({ accessKeyId: 'AKIAFROMENV', secretAccessKey: 'from-env' });
      // Without static keys, one set of clients (the role's) serves every bucket.
      const chain = createClients(loadConfig(BASE));
      expect(chain.s3()).toBe(chain.s3AsRole());
      expect((await chain.s3().config.credentials()).accessKeyId).toBe('AKIAFROMENV');
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});
