/**
 * An operator's LogScale environment file (test/fixtures/logscale.env: the bucket storage variables, concurrency
 * under LogScale's old and new names, LogScale's proxy settings, the size logger, local disk cache settings and
 * unrelated ones) loads as it is: aliases give our settings their values, LogScale's proxy is used, and each
 * setting with no meaning here is one warning line at cold start, by name. Ours win over an alias, with a
 * notice; names that are neither ours nor LogScale's stay refused.
 */
import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/core/config.ts';
import { ConfigError } from '../src/core/errors.ts';
import { createRuntime } from '../src/core/runtime.ts';

const file = parseEnv(readFileSync(new URL('./fixtures/logscale.env', import.meta.url), 'utf8'));
const IGNORED = ['LOCAL_STORAGE_PERCENTAGE', 'LOCAL_STORAGE_MIN_AGE_DAYS', 'S3_STORAGE_PREFERRED_COPY_SOURCE'];

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a LogScale environment file', () => {
  it('loads with the expected values', () => {
    const c = loadConfig(file);
    expect(c).toMatchObject({
      bucket: 'logscale-segments-2026',
      region: 'eu-west-1',
      keyPrefix: 'cluster-a/',
      endpoint: 'https://{bucket}.objects.example.com',
      forcePathStyle: false,
      ephemeralDisks: true,
      // S3_STORAGE_CONCURRENCY sets both directions; its successor for downloads is more specific and wins there.
      transferConcurrency: 6,
      restoreConcurrency: 3,
      sizeLogger: { enabled: true, intervalMinutes: 30 },
    });
    expect(c.encryption.mode === 'on' && c.encryption.current.reveal()).toBe(file.S3_STORAGE_ENCRYPTION_KEY);
    expect(c.previousKeys.map((k) => k.reveal())).toEqual([file.S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS]);
    expect(c.credentials?.accessKeyId).toBe('AKIAOPERATOR1234');
    expect(c.proxy?.https?.reveal()).toBe('http://logscale:proxy-password@proxy.example.com:3129/');
    expect(c.proxy?.http?.reveal()).toBe(c.proxy?.https?.reveal());
    expect(c.proxy?.forS3).toBe(true);
    expect(c.proxy?.description).toBe('HTTP_PROXY_HOST proxy.example.com:3129');
    expect([...c.notices].sort()).toEqual([...IGNORED].sort().map((name) => expect.stringMatching(new RegExp(`^${name} is a LogScale setting with no meaning here; ignored \\(`))));
  });

  it('logs one warning line per ignored setting, naming it, at cold start', async () => {
    const lines: string[] = [];
    const capture = (chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    };
    // Powertools writes through its own Console: warnings on stderr, the rest on stdout.
    vi.spyOn(process.stdout, 'write').mockImplementation(capture);
    vi.spyOn(process.stderr, 'write').mockImplementation(capture);
    // No state bucket: the cold start makes no request, so the file's endpoint and proxy are never dialled.
    await createRuntime({ ...file, LOG_FORMAT: 'json' });
    vi.restoreAllMocks();
    const warnings = lines.flatMap((l) => l.split('\n')).filter((l) => l.includes('"level":"WARN"')).map((l) => JSON.parse(l) as { message: string });
    expect(warnings.map((w) => w.message.split(' ')[0]).sort()).toEqual([...IGNORED].sort());
  });

  it('our own name wins over LogScale\'s, with a notice; a LogScale name alone is used', () => {
    const both = loadConfig({ ...file, S3_STORAGE_TRANSFER_CONCURRENCY: '2' });
    expect(both.transferConcurrency).toBe(2);
    expect(both.notices).toContain('S3_STORAGE_CONCURRENCY="6" (LogScale: concurrent transfers, both directions (LogScale 1.97 to 1.251)) is not used: S3_STORAGE_TRANSFER_CONCURRENCY="2" is set and wins');
    expect(loadConfig({ S3_STORAGE_BUCKET: 'b-1', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_MAX_CONCURRENT_UPLOADS: '9' }).transferConcurrency).toBe(9);
  });

  it('a bad value under a LogScale name is refused naming that name', () => {
    const err = (() => {
      try {
        loadConfig({ ...file, S3_STORAGE_CONCURRENCY: 'lots', S3_STORAGE_MAX_CONCURRENT_DOWNLOADS: '' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ variable: 'S3_STORAGE_CONCURRENCY' });
  });

  it('names that are neither ours nor LogScale\'s stay refused', () => {
    expect(() => loadConfig({ ...file, S3_STORAGE_CONCURENCY: '4' })).toThrow(/S3_STORAGE_CONCURENCY is not a known variable/);
  });

  it('the usual proxy variables when LogScale\'s are not set; S3_STORAGE_USE_HTTP_PROXY=false keeps S3 direct', () => {
    const { HTTP_PROXY_HOST: _h, HTTP_PROXY_PORT: _p, HTTP_PROXY_USERNAME: _u, HTTP_PROXY_PASSWORD: _w, ...rest } = file;
    const c = loadConfig({ ...rest, HTTPS_PROXY: 'http://corp-proxy:8080', no_proxy: 'internal.example.com, .svc', S3_STORAGE_USE_HTTP_PROXY: 'false' });
    expect(c.proxy).toMatchObject({ http: undefined, noProxy: ['internal.example.com', '.svc'], forS3: false, description: 'https via corp-proxy:8080' });
    expect(() => loadConfig({ ...rest, HTTPS_PROXY: 'socks5://corp-proxy:1080' })).toThrow(/HTTPS_PROXY \(value hidden\) is a socks5: URL/);
  });
});
