/**
 * The one configuration loader. Every function and the CLI call `loadConfig()` once at cold start; nothing
 * else reads `S3_STORAGE_*` from the environment. Each variable is checked by its own schema, and a bad value
 * fails with one ConfigError whose message names the variable, what is wrong and the expected form. Secret
 * values are never echoed.
 */
import { isAbsolute } from 'node:path';
import * as z from 'zod';
import { BUCKET_NAME_MESSAGE, isBucketName } from './bucketNames.ts';
import { ConfigError, describeValue } from './errors.ts';
import { DEFAULT_CHUNK_LOG2, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2 } from './format/header.ts';
import { Secret, secretProblem } from './secret.ts';
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
});

/** Every variable the loader knows, in the order of the README's table. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);
const SECRET_VARIABLES = new Set(['S3_STORAGE_ENCRYPTION_KEY', 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS', 'S3_STORAGE_SECRETKEY']);

/** The variable and its value for a message: secrets hidden, credentials in URLs masked, long values cut. */
function describe(variable: string, env: Readonly<Record<string, string | undefined>>): string {
  const value = env[variable];
  if (value === undefined) return `${variable} is not set`;
  if (SECRET_VARIABLES.has(variable)) return `${variable} (value hidden)`;
  return `${variable}=${describeValue(value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1[credentials hidden]@'))}`;
}

type Env = Readonly<Record<string, string | undefined>>;
type Variables = z.output<typeof schema>;

/** LOG_LEVEL, the one variable outside our prefix: the Powertools logger's level. */
const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL', 'SILENT'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function isLogLevel(value: string): value is LogLevel {
  return LOG_LEVELS.some((l) => l === value);
}

/** Our variables that are set and not empty (an empty value counts as unset). */
function ourVariables(env: Env): Record<string, string> {
  const relevant: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if ((name.startsWith('S3_STORAGE_') || name === 'USING_EPHEMERAL_DISKS') && value !== undefined && value !== '') relevant[name] = value;
  }
  return relevant;
}

/** Validates the variables against the schema; the first problem is a ConfigError naming its variable. */
function parseVariables(env: Env): Variables {
  const parsed = schema.safeParse(ourVariables(env));
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue === undefined) throw new ConfigError('S3_STORAGE_*', 'configuration is invalid', { cause: parsed.error });
  if (issue.code === 'unrecognized_keys') {
    const name = issue.keys[0] ?? 'S3_STORAGE_?';
    throw new ConfigError(name, `${name} is not a known variable (a typo?); known: ${CONFIG_VARIABLES.join(', ')}`);
  }
  const variable = String(issue.path[0] ?? 'S3_STORAGE_*');
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

/** Reads and validates the configuration from `env` (default: process.env). Throws ConfigError. */
export function loadConfig(env: Env = process.env): Config {
  const v = parseVariables(env);
  const config: Config = {
    bucket: v.S3_STORAGE_BUCKET,
    region: v.S3_STORAGE_REGION,
    encryption: v.S3_STORAGE_ENCRYPTION_KEY === 'off' ? { mode: 'off' } : { mode: 'on', current: new Secret(v.S3_STORAGE_ENCRYPTION_KEY) },
    previousKeys: (v.S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS ?? []).map((k) => new Secret(k)),
    kmsKeyArn: v.S3_STORAGE_KMS_KEY_ARN,
    keyPrefix: v.S3_STORAGE_OBJECT_KEY_PREFIX ?? '',
    credentials: credentialsOf(v),
    endpoint: v.S3_STORAGE_ENDPOINT_BASE,
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
    sqsEndpoint: env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL || undefined,
    kmsEndpoint: env.AWS_ENDPOINT_URL_KMS || env.AWS_ENDPOINT_URL || undefined,
    awsRegion: env.AWS_REGION || v.S3_STORAGE_REGION,
    restoreConcurrency: v.S3_STORAGE_RESTORE_CONCURRENCY ?? 1,
    logLevel: logLevelOf(env),
    plainObjectsBefore: v.S3_STORAGE_PLAIN_OBJECTS_BEFORE,
  };
  return Object.freeze(config);
}
