/**
 * The one logger (Powertools, JSON lines). Its level is the configuration's LOG_LEVEL, applied by
 * createRuntime once the configuration is validated. `errorFields` turns an error into loggable fields: typed
 * errors give their name, code and data; messages never hold secrets (config values of secrets are Secret
 * objects, which print as [redacted]).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { BucketStorageError } from './errors.ts';

export const logger = new Logger({ serviceName: 'bucket-storage' });

export function errorFields(err: unknown): Record<string, string | number | boolean> {
  if (err instanceof BucketStorageError) {
    const fields: Record<string, string | number | boolean> = { errorName: err.name, errorCode: err.code, errorMessage: err.message, retryable: err.retryable };
    if ('field' in err && typeof err.field === 'string') fields.field = err.field;
    return fields;
  }
  return { errorName: err instanceof Error ? err.name : 'Error', errorMessage: err instanceof Error ? err.message : String(err) };
}
