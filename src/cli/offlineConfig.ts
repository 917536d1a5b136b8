/**
 * encrypt, decrypt and key touch no bucket: they need only the key and prefix variables, so the bucket and
 * region (required by the functions) get placeholders when unset.
 */
import { loadConfig, type Config } from '../core/config.ts';

export function loadOfflineConfig(env: Readonly<Record<string, string | undefined>>): Config {
  return loadConfig({ S3_STORAGE_BUCKET: 'offline-placeholder', S3_STORAGE_REGION: 'us-east-1', ...env });
}
