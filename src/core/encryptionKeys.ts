/**
 * Builds the process's KeyRing from the configuration: `kms:<base64>` secrets are decrypted once with KMS,
 * then every secret goes through scrypt once (see keyRing.ts). Cached per process: cold start pays, warm
 * invocations do not.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import type { Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { KeyRing } from './keyRing.ts';
import type { Secret } from './secret.ts';

const KMS_PREFIX = 'kms:';

/** Resolves `kms:` secrets with `kms`; plain secrets are returned as they are. */
export function kmsSecretResolver(kms: () => Promise<KMSClient>): (secret: Secret) => Promise<string> {
  return async (secret) => {
    const value = secret.reveal();
    if (!value.startsWith(KMS_PREFIX)) return value;
    const blob = Buffer.from(value.slice(KMS_PREFIX.length), 'base64');
    if (blob.length === 0) throw new ConfigError('S3_STORAGE_ENCRYPTION_KEY', 'a kms: secret holds no base64 ciphertext; expected kms:<base64 of a KMS ciphertext blob>');
    try {
      const { DecryptCommand } = await import('@aws-sdk/client-kms');
      const out = await (await kms()).send(new DecryptCommand({ CiphertextBlob: blob }));
      if (out.Plaintext === undefined) throw new Error('KMS returned no plaintext');
      return Buffer.from(out.Plaintext).toString('utf8');
    } catch (err) {
      throw new ConfigError('S3_STORAGE_ENCRYPTION_KEY', `a kms: secret could not be decrypted with KMS (${(err as Error).name}); check the ciphertext and the role's kms:Decrypt right`);
    }
  };
}

let cached: { config: Config; ring: Promise<KeyRing> } | undefined;

/** The key ring of `config`, built once per process and config. */
export function loadKeyRing(config: Config, kms: () => Promise<KMSClient>): Promise<KeyRing> {
  if (cached?.config !== config) {
    const current = config.encryption.mode === 'on' ? config.encryption.current : undefined;
    const ring = KeyRing.fromSecrets(current, config.previousKeys, kmsSecretResolver(kms));
    cached = { config, ring };
  }
  return cached.ring;
}
