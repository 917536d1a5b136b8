/**
 * Encryption keys of format v1: the current key writes, current and previous keys read, chosen by the
 * 8-byte key id in each object's header. scrypt runs once per process per secret (it costs ~50 ms and
 * 16 MiB by design); `kms:` secrets are decrypted once with KMS before that.
 */
import { createHash, createHmac, scrypt } from 'node:crypto';
import { UnknownKeyIdError } from './errors.ts';
import type { Secret } from './secret.ts';

export const KEY_ID_SIZE = 8;
const SCRYPT_SALT = 'bucket-storage/v1';
const SCRYPT_PARAMS = { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export interface KeyEntry {
  readonly keyId: Buffer;
  readonly keyIdHex: string;
  /** 32-byte master key; per-object keys are derived from it with HKDF. */
  readonly master: Buffer;
}

/**
 * Turns a configured secret into the UTF-8 secret to derive from (e.g. by KMS-decrypting `kms:` values);
 * `variable` is the configuration variable it came from, for error messages.
 */
export type SecretResolver = (secret: Secret, variable: string) => Promise<string>;

const masters = new Map<string, Promise<KeyEntry>>();

/** The key of `secret` (a UTF-8 string), derived once per process and cached by the secret's digest. */
export function deriveKey(secret: string): Promise<KeyEntry> {
  const cacheKey = createHash('sha256').update(secret, 'utf8').digest('hex');
  let entry = masters.get(cacheKey);
  if (entry === undefined) {
    entry = new Promise<KeyEntry>((resolve, reject) => {
      scrypt(Buffer.from(secret, 'utf8'), SCRYPT_SALT, 32, SCRYPT_PARAMS, (err, master) => {
        if (err) return reject(err);
        const keyId = createHmac('sha256', master).update('bucket-storage key id').digest().subarray(0, KEY_ID_SIZE);
        resolve({ keyId, keyIdHex: keyId.toString('hex'), master });
      });
    });
    masters.set(cacheKey, entry);
    entry.catch(() => masters.delete(cacheKey));
  }
  return entry;
}

export class KeyRing {
  readonly #byId: Map<string, KeyEntry>;
  private constructor(
    /** The key new objects are written with; undefined when encryption is off. */
    readonly current: KeyEntry | undefined,
    entries: readonly KeyEntry[],
  ) {
    this.#byId = new Map(entries.map((e) => [e.keyIdHex, e]));
  }

  /** The key whose id is `keyId`, or UnknownKeyIdError. */
  find(keyId: Buffer): KeyEntry {
    const entry = this.#byId.get(keyId.toString('hex'));
    if (entry === undefined) throw new UnknownKeyIdError(keyId.toString('hex'), [...this.#byId.keys()]);
    return entry;
  }

  get keyIds(): readonly string[] {
    return [...this.#byId.keys()];
  }

  /** Builds a ring from a current secret (or undefined for `off`) and previous secrets. */
  static async fromSecrets(current: Secret | undefined, previous: readonly Secret[], resolve: SecretResolver): Promise<KeyRing> {
    const cur = current === undefined ? undefined : await deriveKey(await resolve(current, 'S3_STORAGE_ENCRYPTION_KEY'));
    const prev = await Promise.all(previous.map(async (s) => deriveKey(await resolve(s, 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS'))));
    return new KeyRing(cur, cur === undefined ? prev : [cur, ...prev]);
  }
}
