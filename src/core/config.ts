/**
 * The one configuration loader. Every function and the CLI call `loadConfig()` once at cold start; nothing
 * else reads `S3_STORAGE_*` from the environment. Each variable is checked by its own schema, and a bad value
 * fails with one ConfigError whose message names the variable, what is wrong and the expected form. Secret
 * values are never echoed.
 *
 * An operator's LogScale environment file loads as it is: LogScale's names for our settings are aliases, and
 * its settings that mean nothing here are reported, not refused (both tables in logscaleSettings.ts). The
 * lines to report are `config.notices`; the runtime logs them once at cold start.
 */
import { isAbsolute } from 'node:path';
import * as z from 'zod';
import { BUCKET_NAME_MESSAGE, isBucketName } from './bucketNames.ts';
import { ConfigError, describeValue } from './errors.ts';
import { DEFAULT_CHUNK_LOG2, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2 } from './format/header.ts';
import { Secret, secretProblem } from './secret.ts';
import { ALIASES, IGNORED } from './logscaleSettings.ts';
import { normalisePrefix } from './objectKeys.ts';

export type Encryption =
  | { readonly mode: 'off' }
  | { readonly mode: 'on'; readonly current: Secret };

export interface Config {
  readonly bucket: string;
  readonly region: string;
  readonly encryption: Encryption;
  /** Keys older objects may still be encrypted with, even when `encryption.mode` is 'off'. */
  readonly previousKeys: readonly Secret[];
  readonly kmsKeyArn: string | undefined;
  /** '' or a prefix ending in '/'. */
  readonly keyPrefix: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: Secret } | undefined;
  readonly endpoint: string | undefined;
  readonly forcePathStyle: boolean;
  readonly ephemeralDisks: boolean;
  readonly stateBucket: string | undefined;
  readonly segmentsQueueUrl: string | undefined;
  readonly deletionsQueueUrl: string | undefined;
  /** The segments queue's dead-letter queue: the upload function sends records that can never succeed there at once. */
  readonly segmentsDlqUrl: string | undefined;
  readonly sourceRoot: string | undefined;
  readonly restoreRoot: string | undefined;
  /** The staging bucket ingestion nodes put segments in (`s3://` sources), when there is one. */
  readonly staging: Staging | undefined;
  /** log2 of the plaintext chunk size of new objects (format v1: 16..24). */
  readonly chunkLog2: number;
  /** Multipart part size in bytes. */
  readonly partSize: number;
  /** Parts in flight per transfer. */
  readonly transferConcurrency: number;
  /** Ranged GETs in flight for a whole restore; 1 reads the object with one streaming GET. */
  readonly restoreConcurrency: number;
  /** Cleanup reports what it would delete and deletes nothing. */
  readonly cleanupDryRun: boolean;
  /** Grace period between a deletion announcement and the deletion, in hours (0..720). */
  readonly deletionDelayHours: number;
  /** The upload function's timeout in seconds: no upload runs longer, so an incomplete multipart upload
   *  initiated longer ago than this is abandoned (its writer is dead) and may be aborted. */
  readonly uploadTimeoutSeconds: number;
  /** SQS endpoint from the SDK's own AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL (local servers), if set. */
  readonly sqsEndpoint: string | undefined;
  /** KMS endpoint from AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL of the same environment, if set. */
  readonly kmsEndpoint: string | undefined;
  /** Region of the SQS and KMS clients: AWS_REGION, else S3_STORAGE_REGION. */
  readonly awsRegion: string;
  /** LOG_LEVEL, when set: the logger's level (Powertools' own default otherwise). */
  readonly logLevel: LogLevel | undefined;
  /**
   * With encryption on, `plain` objects are read only when S3 last modified them before this instant (when
   * encryption was turned on); undefined: never while encryption is on. See plainObjects.ts.
   */
  readonly plainObjectsBefore: Date | undefined;
  /** LOG_FORMAT, when set: JSON lines or readable text (default: text on a terminal, JSON otherwise). */
  readonly logFormat: LogFormat | undefined;
  /** LogScale's bucket storage size logger: cleanup logs the storage used per bucket every intervalMinutes. */
  readonly sizeLogger: { readonly enabled: boolean; readonly intervalMinutes: number };
  /** The HTTP proxy of the AWS clients, when one is configured. */
  readonly proxy: ProxySettings | undefined;
  /** One line each, logged once at cold start: LogScale settings ignored, aliases overridden. */
  readonly notices: readonly string[];
}

/**
 * The HTTP proxy: LogScale's HTTP_PROXY_HOST/PORT/USERNAME/PASSWORD, or else the usual HTTPS_PROXY, HTTP_PROXY
 * and NO_PROXY (either case). Proxy URLs may hold credentials, hence Secret.
 */
export interface ProxySettings {
  /** The proxy for https:// endpoints. */
  readonly https: Secret | undefined;
  /** The proxy for http:// endpoints. */
  readonly http: Secret | undefined;
  /** NO_PROXY entries (host names, `.domain` suffixes, `*`); loopback addresses are always reached directly. */
  readonly noProxy: readonly string[];
  /** S3_STORAGE_USE_HTTP_PROXY (default true): S3 requests use the proxy too; SQS and KMS always do. */
  readonly forS3: boolean;
  /** Where the proxy came from, without credentials (for logs). */
  readonly description: string;
}

/**
 * The staging bucket: `s3://<bucket>/…` sources are read in `region` (its own, not the current bucket's), and,
 * with `deleteAfterUpload`, their staged copy is deleted once the stored copy is verified.
 */
export interface Staging {
  readonly bucket: string;
  readonly region: string;
  readonly deleteAfterUpload: boolean;
}

/**
 * Default grace period of deletions: 72 h. A bad batch of deletion announcements sent on a Friday evening is
 * still undoable on Monday; Thanos and Mimir keep 48 h, LogScale keeps deleted files for days (7 by default).
 * The cost is storage: the objects of deleted segments stay for 3 more days (≈10 % more with 30-day retention).
 */
export const DEFAULT_DELETION_DELAY_HOURS = 72;
export const MAX_DELETION_DELAY_HOURS = 720;
/** The upload function's default timeout (the stack's uploadTimeout), seconds. */
export const DEFAULT_UPLOAD_TIMEOUT_SECONDS = 900;

const bucketName = z.string().refine(isBucketName, BUCKET_NAME_MESSAGE);
const region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$|^[a-z0-9-]{2,32}$/, 'is not a region name; expected a form like eu-west-1');
const bool = (name: string) =>
  z
    .enum(['true', 'false', 'TRUE', 'FALSE', 'True', 'False', '1', '0'], { error: `${name} expects true or false` })
    .transform((v) => v.toLowerCase() === 'true' || v === '1');
const isHttpUrl = (v: string): boolean => {
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
};
/** True when a URL carries user:password@ (those would be echoed wherever the URL is). */
const hasCredentials = (v: string): boolean => /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(v);
const httpUrl = z
  .string()
  .refine((v) => !hasCredentials(v), 'holds credentials (user:password@); remove them: S3_STORAGE_ACCESSKEY/S3_STORAGE_SECRETKEY or the role give credentials')
  .refine(isHttpUrl, 'is not an http(s) URL; expected a form like http://127.0.0.1:4566');
const absolutePath = z.string().refine(isAbsolute, 'is not an absolute path; expected a form like /mnt/segments');
const intIn = (min: number, max: number, unit: string) =>
  z
    .string()
    .regex(/^\d+$/, `is not a whole number; expected ${min}..${max} ${unit}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `is out of range; expected ${min}..${max} ${unit}`);
const KMS_PREFIX = 'kms:';

/** What is wrong with a configured secret (before kms: decryption), or undefined; never quotes it. */
function configuredSecretProblem(value: string): string | undefined {
  if (value.startsWith(KMS_PREFIX)) return undefined; // checked by the same rules once decrypted (encryptionKeys.ts)
  if (/^\s*kms\s*:/i.test(value)) return 'looks like a kms: secret but does not start with exactly kms: (lowercase, no spaces); write kms:<base64 ciphertext>';
  return secretProblem(value);
}

const secretString = z
  .string()
  .min(1, 'is empty; expected a secret string (64+ random characters), kms:<base64>, or off')
  .superRefine((value, ctx) => {
    const problem = value === 'off' ? undefined : configuredSecretProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

/**
 * A KMS key ARN. Alias ARNs are refused: S3 resolves the alias, but IAM authorises the key itself, so a role
 * granted kms:GenerateDataKey on the alias ARN (as the stack grants on this value) is denied on every write.
 */
const kmsArn = z
  .string()
  .refine((v) => !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:alias\//.test(v), {
    message: 'is an alias ARN; a grant on an alias does not authorise the key, so give the key ARN (aws kms describe-key --key-id <alias ARN> --query KeyMetadata.Arn)',
    abort: true,
  })
  .regex(/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/, 'is not a KMS key ARN; expected arn:aws:kms:<region>:<account>:key/<id>');

function isListOfStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((k) => typeof k === 'string');
}

/** The normalised object key prefix ('' or ending in '/'); the naming module says what is wrong. */
function prefix(raw: string, ctx: z.RefinementCtx): string {
  try {
    return normalisePrefix(raw);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
    return z.NEVER;
  }
}

/**
 * Parses S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: a JSON array of strings, or a comma-separated list. Entries are
 * used exactly as written (never trimmed) and follow the rules of the current key (secretProblem).
 */
function parsePreviousKeys(raw: string, ctx: z.RefinementCtx): string[] {
  let keys: unknown;
  if (raw.trim().startsWith('[')) {
    try {
      keys = JSON.parse(raw);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'starts with [ but is not a JSON array; expected ["key1","key2"] or key1,key2' });
      return [];
    }
  } else {
    keys = raw.split(',');
  }
  if (!isListOfStrings(keys)) {
    ctx.addIssue({ code: 'custom', message: 'holds a non-string entry; expected ["key1","key2"] or key1,key2' });
    return [];
  }
  for (const [i, key] of keys.entries()) {
    const problem = key === '' ? 'is empty' : key === 'off' ? 'is "off", which is no key (previous keys only read)' : configuredSecretProblem(key);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `entry ${i + 1} ${problem}; expected ["key1","key2"] or key1,key2 (no spaces around the commas)` });
      return [];
    }
  }
  return keys;
}

const schema = z.strictObject({
  S3_STORAGE_BUCKET: bucketName,
  S3_STORAGE_REGION: region,
  S3_STORAGE_ENCRYPTION_KEY: secretString,
  S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: z.string().transform(parsePreviousKeys).optional(),
  S3_STORAGE_KMS_KEY_ARN: kmsArn.optional(),
  S3_STORAGE_OBJECT_KEY_PREFIX: z.string().transform(prefix).optional(),
  S3_STORAGE_ACCESSKEY: z.string().regex(/^[A-Za-z0-9+/=_-]{3,128}$/, 'is not an access key id; expected 3..128 characters like AKIA…').optional(),
  S3_STORAGE_SECRETKEY: z.string().min(1, 'is empty; expected the secret access key').optional(),
  S3_STORAGE_ENDPOINT_BASE: httpUrl.optional(),
  S3_STORAGE_PATH_STYLE_ACCESS: bool('S3_STORAGE_PATH_STYLE_ACCESS').optional(),
  USING_EPHEMERAL_DISKS: bool('USING_EPHEMERAL_DISKS').optional(),
  S3_STORAGE_STATE_BUCKET: bucketName.optional(),
  S3_STORAGE_SEGMENTS_QUEUE_URL: httpUrl.optional(),
  S3_STORAGE_DELETIONS_QUEUE_URL: httpUrl.optional(),
  S3_STORAGE_SEGMENTS_DLQ_URL: httpUrl.optional(),
  S3_STORAGE_SOURCE_ROOT: absolutePath.optional(),
  S3_STORAGE_RESTORE_ROOT: absolutePath.optional(),
  S3_STORAGE_STAGING_BUCKET: bucketName.optional(),
  S3_STORAGE_STAGING_REGION: region.optional(),
  S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: bool('S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD').optional(),
  S3_STORAGE_CHUNK_LOG2: intIn(MIN_CHUNK_LOG2, MAX_CHUNK_LOG2, '(log2 of the chunk size in bytes)').optional(),
  S3_STORAGE_PART_SIZE_MIB: intIn(5, 5120, 'MiB').optional(),
  S3_STORAGE_TRANSFER_CONCURRENCY: intIn(1, 64, 'parts in flight').optional(),
  S3_STORAGE_CLEANUP_DRY_RUN: bool('S3_STORAGE_CLEANUP_DRY_RUN').optional(),
  S3_STORAGE_RESTORE_CONCURRENCY: intIn(1, 64, 'ranged GETs in flight').optional(),
  S3_STORAGE_PLAIN_OBJECTS_BEFORE: z.iso
    .datetime({ offset: true, message: 'is not an ISO 8601 date-time; expected the instant encryption was turned on, like 2026-11-25T04:00:00Z' })
    .transform((v) => new Date(v))
    .optional(),
  BUCKET_STORAGE_SIZE_LOGGER_ENABLED: bool('BUCKET_STORAGE_SIZE_LOGGER_ENABLED').optional(),
  BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES: intIn(1, 10_080, 'minutes').optional(),
  S3_STORAGE_USE_HTTP_PROXY: bool('S3_STORAGE_USE_HTTP_PROXY').optional(),
  HTTP_PROXY_HOST: z.string().regex(/^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$/, 'is not a host name; expected a form like proxy.example.com (no scheme, no port)').optional(),
  HTTP_PROXY_PORT: intIn(1, 65_535, '(TCP port)').optional(),
  HTTP_PROXY_USERNAME: z.string().min(1).optional(),
  HTTP_PROXY_PASSWORD: z.string().min(1).optional(),
  S3_STORAGE_DELETION_DELAY_HOURS: intIn(0, MAX_DELETION_DELAY_HOURS, 'hours').optional(),
  S3_STORAGE_UPLOAD_TIMEOUT_SECONDS: intIn(1, 43_200, 'seconds').optional(),
});

/** Every variable the loader knows, in the order of the README's table. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);
const SECRET_VARIABLES = new Set(['S3_STORAGE_ENCRYPTION_KEY', 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS', 'S3_STORAGE_SECRETKEY', 'HTTP_PROXY_PASSWORD']);
/** Variables of ours outside the S3_STORAGE_ prefix (LogScale's names that we implement). */
const UNPREFIXED = new Set(CONFIG_VARIABLES.filter((name) => !name.startsWith('S3_STORAGE_')));

/** The variable and its value for a message: secrets hidden, credentials in URLs masked, long values cut. */
function describe(variable: string, env: Readonly<Record<string, string | undefined>>): string {
  const value = env[variable];
  if (value === undefined) return `${variable} is not set`;
  if (SECRET_VARIABLES.has(variable)) return `${variable} (value hidden)`;
  // Every user:password@ of the value, not only a leading one: a bad value may hold a URL anywhere.
  return `${variable}=${describeValue(value.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/gi, '$1[credentials hidden]@'))}`;
}

type Env = Readonly<Record<string, string | undefined>>;
type Variables = z.output<typeof schema>;

/** LOG_LEVEL, the one variable outside our prefix: the Powertools logger's level. */
const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL', 'SILENT'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function isLogLevel(value: string): value is LogLevel {
  return LOG_LEVELS.some((l) => l === value);
}

const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const isSet = (value: string | undefined): value is string => value !== undefined && value !== '';

/**
 * Our variables that are set and not empty (an empty value counts as unset), with LogScale's aliases resolved
 * and its ignored settings taken out; `notices` receives a line for each alias overridden and each setting ignored.
 */
function ourVariables(env: Env, notices: string[]): Record<string, string> {
  const relevant: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!isSet(value)) continue;
    if (name in IGNORED) notices.push(`${name} is a LogScale setting with no meaning here; ignored (${IGNORED[name]})`);
    else if (ALIASES.some((a) => a.logscale === name)) continue;
    else if (name.startsWith('S3_STORAGE_') || UNPREFIXED.has(name)) relevant[name] = value;
  }
  for (const alias of ALIASES) {
    const value = env[alias.logscale];
    if (!isSet(value)) continue;
    const taken = relevant[alias.ours];
    if (taken === undefined) {
      relevant[alias.ours] = value;
      continue;
    }
    // Between LogScale's own names the table's order is LogScale's precedence: no notice. Ours winning is one.
    if (isSet(env[alias.ours])) notices.push(`${alias.logscale}=${JSON.stringify(value)} (LogScale: ${alias.meaning}) is not used: ${alias.ours}=${JSON.stringify(taken)} is set and wins`);
  }
  return relevant;
}

/** The variable a value came from: ours, or the LogScale alias that set it. */
function sourceOf(variable: string, env: Env): string {
  if (isSet(env[variable])) return variable;
  return ALIASES.find((a) => a.ours === variable && isSet(env[a.logscale]))?.logscale ?? variable;
}

/** Validates the variables against the schema; the first problem is a ConfigError naming its variable. */
function parseVariables(env: Env, notices: string[]): Variables {
  const parsed = schema.safeParse(ourVariables(env, notices));
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue === undefined) throw new ConfigError('S3_STORAGE_*', 'configuration is invalid', { cause: parsed.error });
  if (issue.code === 'unrecognized_keys') {
    const name = issue.keys[0] ?? 'S3_STORAGE_?';
    throw new ConfigError(name, `${name} is not a known variable (a typo?); known: ${CONFIG_VARIABLES.join(', ')}`);
  }
  const variable = sourceOf(String(issue.path[0] ?? 'S3_STORAGE_*'), env);
  const missing = env[variable] === undefined || env[variable] === '';
  if (missing) throw new ConfigError(variable, `${variable} is not set; it is required`);
  throw new ConfigError(variable, `${describe(variable, env)}: ${issue.message}`, { cause: parsed.error });
}

function credentialsOf(v: Variables): Config['credentials'] {
  if ((v.S3_STORAGE_ACCESSKEY === undefined) !== (v.S3_STORAGE_SECRETKEY === undefined)) {
    const missing = v.S3_STORAGE_ACCESSKEY === undefined ? 'S3_STORAGE_ACCESSKEY' : 'S3_STORAGE_SECRETKEY';
    throw new ConfigError(missing, `${missing} is not set; S3_STORAGE_ACCESSKEY and S3_STORAGE_SECRETKEY go together (or set neither to use the default credential chain)`);
  }
  if (v.S3_STORAGE_ACCESSKEY === undefined || v.S3_STORAGE_SECRETKEY === undefined) return undefined;
  return { accessKeyId: v.S3_STORAGE_ACCESSKEY, secretAccessKey: new Secret(v.S3_STORAGE_SECRETKEY) };
}

/**
 * The staging bucket. It must be neither the current nor the state bucket (deleting a staged copy must never
 * touch a stored one); its region defaults to the current bucket's. Deleting staged copies needs the bucket.
 */
function stagingOf(v: Variables): Staging | undefined {
  const bucket = v.S3_STORAGE_STAGING_BUCKET;
  if (bucket === undefined) {
    for (const name of ['S3_STORAGE_STAGING_REGION', 'S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD'] as const) {
      if (v[name] !== undefined) throw new ConfigError(name, `${name} is set but S3_STORAGE_STAGING_BUCKET is not; set the staging bucket too, or unset ${name}`);
    }
    return undefined;
  }
  for (const [other, name] of [[v.S3_STORAGE_BUCKET, 'S3_STORAGE_BUCKET'], [v.S3_STORAGE_STATE_BUCKET, 'S3_STORAGE_STATE_BUCKET']] as const) {
    if (bucket === other) throw new ConfigError('S3_STORAGE_STAGING_BUCKET', `S3_STORAGE_STAGING_BUCKET=${JSON.stringify(bucket)} is also ${name}; the staging bucket must be a bucket of its own`);
  }
  return { bucket, region: v.S3_STORAGE_STAGING_REGION ?? v.S3_STORAGE_REGION, deleteAfterUpload: v.S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD ?? false };
}

function logLevelOf(env: Env): LogLevel | undefined {
  const raw = env.LOG_LEVEL;
  if (raw === undefined || raw === '') return undefined;
  const level = raw.toUpperCase();
  if (!isLogLevel(level)) throw new ConfigError('LOG_LEVEL', `LOG_LEVEL=${JSON.stringify(raw)} is not a log level; expected one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

function logFormatOf(env: Env): LogFormat | undefined {
  const raw = env.LOG_FORMAT;
  if (!isSet(raw)) return undefined;
  const format = LOG_FORMATS.find((f) => f === raw.toLowerCase());
  if (format === undefined) throw new ConfigError('LOG_FORMAT', `LOG_FORMAT=${JSON.stringify(raw)} is not a log format; expected json or text`);
  return format;
}

/** The placeholder of S3_STORAGE_ENDPOINT_BASE that stands for each bucket's name. */
export const BUCKET_PLACEHOLDER = '{bucket}';

/** S3_STORAGE_ENDPOINT_BASE: `{bucket}` may stand once in the host name, and only with virtual-hosted style. */
function endpointOf(v: Variables): string | undefined {
  const endpoint = v.S3_STORAGE_ENDPOINT_BASE;
  if (endpoint === undefined || !endpoint.includes(BUCKET_PLACEHOLDER)) return endpoint;
  const host = new URL(endpoint).hostname;
  if (endpoint.split(BUCKET_PLACEHOLDER).length !== 2 || !host.includes(BUCKET_PLACEHOLDER)) {
    throw new ConfigError('S3_STORAGE_ENDPOINT_BASE', `S3_STORAGE_ENDPOINT_BASE=${JSON.stringify(endpoint)}: ${BUCKET_PLACEHOLDER} may stand once, in the host name; expected a form like https://{bucket}.objects.example.com`);
  }
  if (v.S3_STORAGE_PATH_STYLE_ACCESS === true) {
    throw new ConfigError('S3_STORAGE_PATH_STYLE_ACCESS', `S3_STORAGE_PATH_STYLE_ACCESS=true contradicts ${BUCKET_PLACEHOLDER} in S3_STORAGE_ENDPOINT_BASE (each bucket by its own host); drop one of them`);
  }
  return endpoint;
}

/** The first of `names` set in `env`, with its name. */
function firstSet(env: Env, names: readonly string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (isSet(value)) return { name, value };
  }
  return undefined;
}

/** A proxy URL from HTTPS_PROXY/HTTP_PROXY: http(s)://[user:pass@]host[:port]; ConfigError otherwise (value hidden). */
function proxyUrl(name: string, value: string): Secret {
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `http://${value}`);
  } catch {
    throw new ConfigError(name, `${name} (value hidden) is not a proxy URL; expected a form like http://proxy.example.com:3128`);
  }
  if (!['http:', 'https:'].includes(url.protocol)) throw new ConfigError(name, `${name} (value hidden) is a ${url.protocol} URL; expected an http:// or https:// proxy`);
  return new Secret(url.href);
}

/** Where a proxy URL points, without credentials. */
const hostOf = (secret: Secret): string => new URL(secret.reveal()).host;

/** The proxy: LogScale's HTTP_PROXY_* when HTTP_PROXY_HOST is set, else the usual *_PROXY variables. */
function proxyOf(v: Variables, env: Env, notices: string[]): ProxySettings | undefined {
  const forS3 = v.S3_STORAGE_USE_HTTP_PROXY ?? true;
  const noProxy = (firstSet(env, ['NO_PROXY', 'no_proxy'])?.value ?? '').split(',').map((e) => e.trim().toLowerCase()).filter((e) => e !== '');
  const standard = firstSet(env, ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']);
  if (v.HTTP_PROXY_HOST !== undefined) {
    if (v.HTTP_PROXY_PORT === undefined) throw new ConfigError('HTTP_PROXY_PORT', 'HTTP_PROXY_PORT is not set; HTTP_PROXY_HOST needs it (e.g. 3128)');
    if ((v.HTTP_PROXY_USERNAME === undefined) !== (v.HTTP_PROXY_PASSWORD === undefined)) {
      const missing = v.HTTP_PROXY_USERNAME === undefined ? 'HTTP_PROXY_USERNAME' : 'HTTP_PROXY_PASSWORD';
      throw new ConfigError(missing, `${missing} is not set; HTTP_PROXY_USERNAME and HTTP_PROXY_PASSWORD go together (or set neither)`);
    }
    const url = new URL(`http://${v.HTTP_PROXY_HOST}:${v.HTTP_PROXY_PORT}`);
    url.username = v.HTTP_PROXY_USERNAME ?? '';
    url.password = v.HTTP_PROXY_PASSWORD ?? '';
    const proxy = new Secret(url.href);
    if (standard !== undefined) notices.push(`${standard.name} is not used: LogScale's HTTP_PROXY_HOST is set and wins`);
    return { https: proxy, http: proxy, noProxy, forS3, description: `HTTP_PROXY_HOST ${url.host}` };
  }
  const httpsVar = firstSet(env, ['HTTPS_PROXY', 'https_proxy']);
  const httpVar = firstSet(env, ['HTTP_PROXY', 'http_proxy']);
  if (httpsVar === undefined && httpVar === undefined) return undefined;
  const https = httpsVar && proxyUrl(httpsVar.name, httpsVar.value);
  const http = httpVar && proxyUrl(httpVar.name, httpVar.value);
  const description = [https && `https via ${hostOf(https)}`, http && `http via ${hostOf(http)}`].filter(Boolean).join(', ');
  return { https, http, noProxy, forS3, description };
}

/** Reads and validates the configuration from `env` (default: process.env). Throws ConfigError. */
export function loadConfig(env: Env = process.env): Config {
  const notices: string[] = [];
  const v = parseVariables(env, notices);
  const config: Config = {
    bucket: v.S3_STORAGE_BUCKET,
    region: v.S3_STORAGE_REGION,
    encryption: v.S3_STORAGE_ENCRYPTION_KEY === 'off' ? { mode: 'off' } : { mode: 'on', current: new Secret(v.S3_STORAGE_ENCRYPTION_KEY) },
    previousKeys: (v.S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS ?? []).map((k) => new Secret(k)),
    kmsKeyArn: v.S3_STORAGE_KMS_KEY_ARN,
    keyPrefix: v.S3_STORAGE_OBJECT_KEY_PREFIX ?? '',
    credentials: credentialsOf(v),
    endpoint: endpointOf(v),
    forcePathStyle: v.S3_STORAGE_PATH_STYLE_ACCESS ?? false,
    ephemeralDisks: v.USING_EPHEMERAL_DISKS ?? false,
    stateBucket: v.S3_STORAGE_STATE_BUCKET,
    segmentsQueueUrl: v.S3_STORAGE_SEGMENTS_QUEUE_URL,
    deletionsQueueUrl: v.S3_STORAGE_DELETIONS_QUEUE_URL,
    segmentsDlqUrl: v.S3_STORAGE_SEGMENTS_DLQ_URL,
    sourceRoot: v.S3_STORAGE_SOURCE_ROOT,
    restoreRoot: v.S3_STORAGE_RESTORE_ROOT,
    staging: stagingOf(v),
    chunkLog2: v.S3_STORAGE_CHUNK_LOG2 ?? DEFAULT_CHUNK_LOG2,
    partSize: (v.S3_STORAGE_PART_SIZE_MIB ?? 16) * 1024 * 1024,
    transferConcurrency: v.S3_STORAGE_TRANSFER_CONCURRENCY ?? 4,
    cleanupDryRun: v.S3_STORAGE_CLEANUP_DRY_RUN ?? false,
    deletionDelayHours: v.S3_STORAGE_DELETION_DELAY_HOURS ?? DEFAULT_DELETION_DELAY_HOURS,
    uploadTimeoutSeconds: v.S3_STORAGE_UPLOAD_TIMEOUT_SECONDS ?? DEFAULT_UPLOAD_TIMEOUT_SECONDS,
    sqsEndpoint: env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL || undefined,
    kmsEndpoint: env.AWS_ENDPOINT_URL_KMS || env.AWS_ENDPOINT_URL || undefined,
    awsRegion: env.AWS_REGION || v.S3_STORAGE_REGION,
    restoreConcurrency: v.S3_STORAGE_RESTORE_CONCURRENCY ?? 1,
    logLevel: logLevelOf(env),
    plainObjectsBefore: v.S3_STORAGE_PLAIN_OBJECTS_BEFORE,
    logFormat: logFormatOf(env),
    sizeLogger: { enabled: v.BUCKET_STORAGE_SIZE_LOGGER_ENABLED ?? true, intervalMinutes: v.BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES ?? 60 },
    proxy: proxyOf(v, env, notices),
    notices,
  };
  return Object.freeze(config);
}
