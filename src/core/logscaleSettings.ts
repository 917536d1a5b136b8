/**
 * LogScale's names for bucket storage settings, as data: the config loader (config.ts) reads an operator's
 * LogScale environment file through these tables and nothing else. Sources: LogScale's configuration variable
 * reference (library.humio.com, "envar-…" pages) and its Amazon bucket storage page ("Other options").
 *
 *   ALIASES   a LogScale name for a setting we have under our own name: its value is used for ours when ours
 *             is unset; when both are set, ours wins and a notice says so.
 *   IGNORED   LogScale settings that mean nothing to a serverless copy (a local disk cache, a JVM thread pool,
 *             cluster-internal transfers): each one set is reported once, by name, instead of being refused.
 *
 * Settings LogScale and we share by name (S3_STORAGE_BUCKET, S3_STORAGE_ENDPOINT_BASE, USING_EPHEMERAL_DISKS,
 * S3_STORAGE_USE_HTTP_PROXY, HTTP_PROXY_HOST/PORT/USERNAME/PASSWORD, BUCKET_STORAGE_SIZE_LOGGER_ENABLED,
 * BUCKET_STORAGE_SIZE_LOGGER_INTERVAL_MINUTES, …) are simply ours: they are in the loader's schema.
 */

export interface Alias {
  /** LogScale's variable. */
  readonly logscale: string;
  /** Our variable it sets. */
  readonly ours: string;
  /** What LogScale means by it, and why it maps to ours. */
  readonly meaning: string;
}

/**
 * In order of precedence: when several LogScale names for one of ours are set, the first listed wins. LogScale
 * counts files transferred at once by a node; a function here transfers one segment at a time, so the count
 * bounds the requests in flight for that transfer (parts of an upload, ranged GETs of a restore).
 */
export const ALIASES: readonly Alias[] = [
  { logscale: 'S3_STORAGE_MAX_CONCURRENT_UPLOADS', ours: 'S3_STORAGE_TRANSFER_CONCURRENCY', meaning: 'concurrent uploads (LogScale 1.240 and later)' },
  { logscale: 'S3_STORAGE_UPLOAD_CONCURRENCY', ours: 'S3_STORAGE_TRANSFER_CONCURRENCY', meaning: 'concurrent uploads (LogScale before 1.111)' },
  { logscale: 'S3_STORAGE_CONCURRENCY', ours: 'S3_STORAGE_TRANSFER_CONCURRENCY', meaning: 'concurrent transfers, both directions (LogScale 1.97 to 1.251)' },
  { logscale: 'S3_STORAGE_MAX_CONCURRENT_DOWNLOADS', ours: 'S3_STORAGE_RESTORE_CONCURRENCY', meaning: 'concurrent downloads (LogScale 1.240 and later)' },
  { logscale: 'S3_STORAGE_DOWNLOAD_CONCURRENCY', ours: 'S3_STORAGE_RESTORE_CONCURRENCY', meaning: 'concurrent downloads (LogScale before 1.111)' },
  { logscale: 'S3_STORAGE_CONCURRENCY', ours: 'S3_STORAGE_RESTORE_CONCURRENCY', meaning: 'concurrent transfers, both directions (LogScale 1.97 to 1.251)' },
];

/** LogScale settings with no meaning here, and why. */
export const IGNORED: Readonly<Record<string, string>> = {
  LOCAL_STORAGE_PERCENTAGE: 'a local disk cache limit; the functions keep no segment on disk',
  LOCAL_STORAGE_MIN_AGE_DAYS: 'a local disk cache setting; the functions keep no segment on disk',
  LOCAL_STORAGE_PREFILL_PERCENTAGE: 'prefilling a local disk cache from the bucket; there is none here',
  S3_STORAGE_PREFERRED_COPY_SOURCE: 'choosing between the bucket and another cluster node as copy source; there are no nodes here',
  S3_STORAGE_TRANSFER_THREAD_POOL_SIZE: "the JVM's transfer thread pool; Node has none to size",
  S3_STORAGE_HCP_COMPAT: 'Hitachi Content Platform quirks of LogScale\'s own S3 client',
  BUCKET_STORAGE_SSE_COMPATIBLE: 'LogScale\'s checksum mode for SSE buckets; integrity here rests on S3 additional checksums (S3_STORAGE_KMS_KEY_ARN)',
  USE_AWS_SDK: 'LogScale\'s choice between the AWS SDK and its own HTTP client; the AWS SDK is always used here',
  HTTP_PROXY_ALLOW_NOTIFIERS_NOT_USE: 'alert notifiers, which do not exist here',
};

/** Every LogScale name these tables know (aliases and ignored). */
export const LOGSCALE_NAMES: ReadonlySet<string> = new Set([...ALIASES.map((a) => a.logscale), ...Object.keys(IGNORED)]);
