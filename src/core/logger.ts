/**
 * The one logger (Powertools). Its level and format come from the configuration (LOG_LEVEL, LOG_FORMAT),
 * applied by createRuntime once the configuration is validated:
 *   json  one JSON line per entry, Powertools' own (Lambda, scripts, anything that reads logs by machine);
 *   text  one readable line per entry on stderr: `12:04:05 WARN  message  key=value …` (a person at a terminal).
 * Without LOG_FORMAT: text when stderr is a terminal, JSON otherwise.
 * `errorFields` turns an error into loggable fields: typed errors give their name, code and data; messages
 * never hold secrets (config values of secrets are Secret objects, which print as [redacted]).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { LogItem } from '@aws-lambda-powertools/logger';
import type { LogFormat } from './config.ts';
import { BucketStorageError } from './errors.ts';

/** Powertools' own keys, which a readable line leaves out (the message and level are its first words). */
const QUIET_KEYS = new Set(['level', 'message', 'timestamp', 'service', 'sampling_rate', 'xray_trace_id', 'cold_start', 'function_arn', 'function_memory_size', 'function_name', 'function_request_id']);

/** A value as a readable line shows it: strings bare unless they hold spaces, everything else as JSON. */
function show(value: unknown): string {
  if (typeof value === 'string') return /[\s="]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/** One readable line of a log entry. */
export function textLine(attributes: Readonly<Record<string, unknown>>, at: Date = new Date()): string {
  const level = String(attributes.level ?? 'INFO').padEnd(5);
  const rest = Object.entries(attributes)
    .filter(([k, v]) => !QUIET_KEYS.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${show(v)}`);
  return [`${at.toTimeString().slice(0, 8)} ${level} ${String(attributes.message ?? '')}`, ...rest].join('  ');
}

/** Powertools' logger that prints readable lines in the text format, its own JSON lines otherwise. */
class BucketStorageLogger extends Logger {
  #format: LogFormat = 'json';

  setFormat(format: LogFormat): void {
    this.#format = format;
  }

  protected override printLog(logLevel: number, log: LogItem): void {
    if (this.#format === 'json') return super.printLog(logLevel, log);
    log.prepareForPrint();
    process.stderr.write(`${textLine(log.getAttributes())}\n`);
  }
}

export const logger = new BucketStorageLogger({ serviceName: 'bucket-storage' });

/** The format to use: the configured one, else text when `stderr` is a terminal. */
export function applyLogFormat(configured: LogFormat | undefined, stderr: { readonly isTTY?: boolean } = process.stderr): LogFormat {
  const format = configured ?? (stderr.isTTY === true ? 'text' : 'json');
  logger.setFormat(format);
  return format;
}

export function errorFields(err: unknown): Record<string, string | number | boolean> {
  if (err instanceof BucketStorageError) {
    const fields: Record<string, string | number | boolean> = { errorName: err.name, errorCode: err.code, errorMessage: err.message, retryable: err.retryable };
    if ('field' in err && typeof err.field === 'string') fields.field = err.field;
    return fields;
  }
  return { errorName: err instanceof Error ? err.name : 'Error', errorMessage: err instanceof Error ? err.message : String(err) };
}
