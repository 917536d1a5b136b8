/**
 * Builds the process's KeyRing from the configuration: `kms:<base64>` secrets are decrypted once with KMS,
 * then every secret goes through scrypt once (see keyRing.ts). Cached per process: cold start pays, warm
 * invocations do not. Every resolved secret (kms: ones included, which the configuration cannot see) is held
 * to the rules of secret.ts: refused below the minimum length, near-miss spellings of off, surrounding
 * whitespace; a warning is logged below the suggested length.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import type { Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { KeyRing, type SecretResolver } from './keyRing.ts';
import { logger } from './logger.ts';
import { secretProblem, secretWarning } from './secret.ts';

const KMS_PREFIX = 'kms:';

/**
 * Resolves `kms:` secrets with `kms`; plain secrets are returned as they are. Either is then checked against
 * the rules of secret.ts (ConfigError naming `variable` and the rule, never the value).
 */
export function kmsSecretResolver(kms: () => Promise<KMSClient>): SecretResolver {
  return async (secret, variable) => {
    const value = await decryptIfKms(secret.reveal(), variable, kms);
    const problem = secretProblem(value);
    const from = secret.reveal().startsWith(KMS_PREFIX) ? 'the secret its kms: value decrypts to ' : '';
    if (problem !== undefined) throw new ConfigError(variable, `${variable}: ${from}${problem}`);
    const warning = secretWarning(value);
    if (warning !== undefined) logger.warn(`${variable}: ${from}${warning}`, { variable });
    return value;
  };
}

async function decryptIfKms(value: string, variable: string, kms: () => Promise<KMSClient>): Promise<string> {
  if (!value.startsWith(KMS_PREFIX)) return value;
  const blob = Buffer.from(value.slice(KMS_PREFIX.length), 'base64');
  if (blob.length === 0) throw new ConfigError(variable, `${variable}: a kms: secret holds no base64 ciphertext; expected kms:<base64 of a KMS ciphertext blob>`);
  try {
    const { DecryptCommand } = await import('@aws-sdk/client-kms');
    const out = await (await kms()).send(new DecryptCommand({ CiphertextBlob: blob }));
    if (out.Plaintext === undefined) throw new Error('KMS returned no plaintext');
    return Buffer.from(out.Plaintext).toString('utf8');
  } catch (err) {
    const name = err instanceof Error ? err.name : 'Error';
    throw new ConfigError(variable, `${variable}: a kms: secret could not be decrypted with KMS (${name}); check the ciphertext and the role's kms:Decrypt right`, { cause: err });
  }
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
