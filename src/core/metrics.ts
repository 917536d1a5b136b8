/**
 * The metrics of the three functions: Powertools Metrics, written as CloudWatch embedded metric format (EMF)
 * lines to stdout, which CloudWatch Logs turns into metrics; no API call. Namespace `BucketStorage`; every
 * metric has the dimensions `service` and `function`, most an `outcome`, so dimensions stay few:
 *
 *   upload, per record        Segments (Count), SegmentBytes (Bytes), UploadSeconds (Seconds),
 *     outcome uploaded |      UploadThroughput (Megabytes/Second, uploaded only), AnnouncementAge (Seconds:
 *     already-stored | failed now minus the record's SQS SentTimestamp, when stored or acknowledged);
 *                             failures also under {function, outcome, errorCode}
 *   fetch, per restore        Restores (Count), RestoredBytes (Bytes), RestoreSeconds (Seconds),
 *     outcome restored |      RestoreThroughput (Megabytes/Second); `read` whole | range;
 *     failed                  failures also under {function, outcome, errorClass}
 *   cleanup, per run          DeletionsMarked, DeletionsDone, DeletionsKept, DeletionsFailed, MessagesLeft, MalformedMessages (Count)
 *   cleanup, at most hourly   StoredObjects (Count), StoredBytes (Bytes), per `bucket` (storageSize.ts)
 *   every invocation          SdkRequests, SdkRetries, SdkThrottles (Count), SdkRetryDelay (Milliseconds)
 *
 * The handlers wire it with Powertools' `logMetrics` middleware (flush at the end of each invocation, and a
 * ColdStart metric) and `requestMetrics` below; the values come from these functions.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type middy from '@middy/core';
import { BucketStorageError } from './errors.ts';
import type { RequestCounts } from './requestStats.ts';

export const NAMESPACE = 'BucketStorage';
export const metrics = new Metrics({ namespace: NAMESPACE, serviceName: 'bucket-storage' });

export type FunctionName = 'upload' | 'fetch' | 'cleanup';
type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];
type Values = readonly (readonly [name: string, unit: Unit, value: number])[];

const MiB = 1024 * 1024;

/** One EMF line: `values` under `dimensions` (and, when given, also under `dimensions` + `detail`). */
function publish(dimensions: Readonly<Record<string, string>>, values: Values, detail?: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(dimensions)) metrics.addDimension(name, value);
  if (detail !== undefined) metrics.addDimensions({ ...dimensions, ...detail });
  for (const [name, unit, value] of values) metrics.addMetric(name, unit, value);
  metrics.publishStoredMetrics();
}

const throughput = (bytes: number, seconds: number): number => (seconds > 0 ? bytes / MiB / seconds : 0);

/** The code metrics group failures by: our typed errors' code, else UNEXPECTED. */
export function errorCodeOf(err: unknown): string {
  return err instanceof BucketStorageError ? err.code : 'UNEXPECTED';
}

export interface StoredSegment {
  readonly outcome: 'uploaded' | 'already-stored';
  /** Plaintext bytes of the segment. */
  readonly bytes: number;
  readonly seconds: number;
  /** Seconds since the announcement was sent (SQS SentTimestamp). */
  readonly announcementAge: number | undefined;
}

export function recordUpload(segment: StoredSegment): void {
  const values: [string, Unit, number][] = [
    ['Segments', MetricUnit.Count, 1],
    ['SegmentBytes', MetricUnit.Bytes, segment.bytes],
    ['UploadSeconds', MetricUnit.Seconds, segment.seconds],
  ];
  if (segment.outcome === 'uploaded') values.push(['UploadThroughput', MetricUnit.MegabytesPerSecond, throughput(segment.bytes, segment.seconds)]);
  if (segment.announcementAge !== undefined) values.push(['AnnouncementAge', MetricUnit.Seconds, segment.announcementAge]);
  publish({ function: 'upload', outcome: segment.outcome }, values);
}

export function recordUploadFailure(err: unknown): void {
  publish({ function: 'upload', outcome: 'failed' }, [['Segments', MetricUnit.Count, 1]], { errorCode: errorCodeOf(err) });
}

/** Seconds since an SQS SentTimestamp (milliseconds since the epoch, as a string); undefined without one. */
export function ageOf(sentTimestamp: string | undefined, now: number = Date.now()): number | undefined {
  const sent = Number(sentTimestamp);
  return sentTimestamp === undefined || !Number.isFinite(sent) ? undefined : Math.max(0, (now - sent) / 1000);
}

export function recordRestore(restore: { readonly read: 'whole' | 'range'; readonly bytes: number; readonly seconds: number }): void {
  publish({ function: 'fetch', outcome: 'restored', read: restore.read }, [
    ['Restores', MetricUnit.Count, 1],
    ['RestoredBytes', MetricUnit.Bytes, restore.bytes],
    ['RestoreSeconds', MetricUnit.Seconds, restore.seconds],
    ['RestoreThroughput', MetricUnit.MegabytesPerSecond, throughput(restore.bytes, restore.seconds)],
  ]);
}

export function recordRestoreFailure(err: unknown, seconds: number): void {
  const errorClass = err instanceof Error ? err.name : 'Error';
  publish({ function: 'fetch', outcome: 'failed' }, [['Restores', MetricUnit.Count, 1], ['RestoreSeconds', MetricUnit.Seconds, seconds]], { errorClass });
}

export interface CleanupCounts {
  /** Deletion announcements recorded as pending (deletion marks), due after the grace period. */
  readonly marked: number;
  /** Segments deleted from every registered bucket (marks that fell due). */
  readonly done: number;
  /** Deletions deliberately not carried out this run (dry run). */
  readonly kept: number;
  /** Deletions that failed in at least one bucket. */
  readonly failed: number;
  /** Messages left on the queue for a later run. */
  readonly messagesLeft: number;
  readonly malformed: number;
}

export function recordCleanup(counts: CleanupCounts): void {
  publish({ function: 'cleanup' }, [
    ['DeletionsMarked', MetricUnit.Count, counts.marked],
    ['DeletionsDone', MetricUnit.Count, counts.done],
    ['DeletionsKept', MetricUnit.Count, counts.kept],
    ['DeletionsFailed', MetricUnit.Count, counts.failed],
    ['MessagesLeft', MetricUnit.Count, counts.messagesLeft],
    ['MalformedMessages', MetricUnit.Count, counts.malformed],
  ]);
}

export function recordStorageUsed(bucket: string, used: { readonly objects: number; readonly bytes: number }): void {
  publish({ function: 'cleanup', bucket }, [
    ['StoredObjects', MetricUnit.Count, used.objects],
    ['StoredBytes', MetricUnit.Bytes, used.bytes],
  ]);
}

export function recordRequests(fn: FunctionName, counts: RequestCounts): void {
  metrics.addDimension('function', fn);
  metrics.addMetric('SdkRequests', MetricUnit.Count, counts.operations);
  metrics.addMetric('SdkRetries', MetricUnit.Count, counts.retries);
  metrics.addMetric('SdkThrottles', MetricUnit.Count, counts.throttles);
  metrics.addMetric('SdkRetryDelay', MetricUnit.Milliseconds, counts.retryDelayMs);
  // Flushed by logMetrics, which runs after this middleware.
}

/**
 * A middy middleware that adds the invocation's SDK request counts (from `take`) before Powertools' logMetrics
 * flushes: `.use(logMetrics(metrics)).use(requestMetrics('upload', take))`.
 */
export function requestMetrics(fn: FunctionName, take: () => RequestCounts | undefined): middy.MiddlewareObj {
  const add = (): void => {
    const counts = take();
    if (counts !== undefined) recordRequests(fn, counts);
  };
  return { after: add, onError: add };
}
