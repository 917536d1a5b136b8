/**
 * Edges of the key ring and the secret resolver that the mutation run (docs/MUTATION.md) found untested: the
 * kms: paths with a stand-in KMS client (what is sent, an empty ciphertext, KMS failures and their message), the
 * message prefix of a plain secret, a kms: value decrypting to exactly "off", the 64-character warning bound, the
 * variable names the ring hands its resolver, the key ids an unknown-key error lists, and the per-process cache.
 */
import type { KMSClient } from '@aws-sdk/client-kms';
import { describe, expect, it, vi } from 'vitest';
import { kmsSecretResolver, loadKeyRing } from '../src/core/encryptionKeys.ts';
import { ConfigError, UnknownKeyIdError } from '../src/core/errors.ts';
import { deriveKey, KeyRing } from '../src/core/keyRing.ts';
import { loadConfig } from '../src/core/config.ts';
import { logger } from '../src/core/logger.ts';
import { Secret, secretProblem, secretWarning } from '../src/core/secret.ts';

const SECRET = 'k'.repeat(64);
const VAR = 'S3_STORAGE_ENCRYPTION_KEY';

/** A stand-in KMS client: records each DecryptCommand's input and answers with `answer`. */
function fakeKms(answer: () => Promise<unknown>) {
  const sent: unknown[] = [];
  const client = { send: async (command: { input: unknown }) => (sent.push(command.input), answer()) } as unknown as KMSClient;
  return { sent, kms: async () => client };
}

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('resolved');
}

describe('kms: secrets', () => {
  it('sends the base64-decoded ciphertext after the prefix, and a plain secret never reaches KMS', async () => {
    const { sent, kms } = fakeKms(async () => ({ Plaintext: Buffer.from(SECRET) }));
    await expect(kmsSecretResolver(kms)(new Secret(`kms:${Buffer.from('blob-bytes').toString('base64')}`), VAR)).resolves.toBe(SECRET);
    expect(sent).toEqual([{ CiphertextBlob: Buffer.from('blob-bytes') }]);
    await expect(kmsSecretResolver(kms)(new Secret(SECRET), VAR)).resolves.toBe(SECRET);
    expect(sent).toHaveLength(1);
  });

  it('an empty kms: value is refused before KMS is asked', async () => {
    const { sent, kms } = fakeKms(async () => ({ Plaintext: Buffer.from(SECRET) }));
    const err = await configError(kmsSecretResolver(kms)(new Secret('kms:'), VAR));
    expect(err.message).toBe(`${VAR}: a kms: secret holds no base64 ciphertext; expected kms:<base64 of a KMS ciphertext blob>`);
    expect(sent).toHaveLength(0);
  });

  it('a KMS failure names the error and keeps it as the cause; no plaintext, or a non-Error, reads as Error', async () => {
    const denied = Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    const err = await configError(kmsSecretResolver(fakeKms(async () => Promise.reject(denied)).kms)(new Secret('kms:AQID'), VAR));
    expect(err.message).toBe(`${VAR}: a kms: secret could not be decrypted with KMS (AccessDeniedException); check the ciphertext and the role's kms:Decrypt right`);
    expect(err.variable).toBe(VAR);
    expect(err.cause).toBe(denied);
    const none = await configError(kmsSecretResolver(fakeKms(async () => ({})).kms)(new Secret('kms:AQID'), VAR));
    expect(none.message).toMatch(/could not be decrypted with KMS \(Error\)/);
    expect((none.cause as Error).message).toBe('KMS returned no plaintext');
    const thrown = await configError(kmsSecretResolver(fakeKms(async () => Promise.reject('a string')).kms)(new Secret('kms:AQID'), VAR));
    expect(thrown.message).toMatch(/could not be decrypted with KMS \(Error\)/);
  });

  it('a plain secret is named as it is; a kms: value decrypting to exactly off is too short, not a near-miss', async () => {
    const plain = await configError(kmsSecretResolver(fakeKms(async () => ({})).kms)(new Secret('short'), VAR));
    expect(plain.message).toBe(`${VAR}: is shorter than 32 characters, the minimum; use 64+ random characters`);
    const off = await configError(kmsSecretResolver(fakeKms(async () => ({ Plaintext: Buffer.from('off') })).kms)(new Secret('kms:AQID'), VAR));
    expect(off.message).toMatch(/decrypts to is shorter than 32 characters/);
    expect(secretProblem('off')).toMatch(/^is shorter than 32/);
  });

  it('warns below 64 characters, naming the variable in the log attributes; not at 64', async () => {
    expect(secretWarning('w'.repeat(63))).toBe('is shorter than the 64 random characters suggested');
    expect(secretWarning('w'.repeat(64))).toBeUndefined();
    const warn = vi.spyOn(logger, 'warn').mockImplementation(() => undefined);
    try {
      await kmsSecretResolver(fakeKms(async () => ({})).kms)(new Secret('w'.repeat(40)), VAR);
      expect(warn.mock.calls).toEqual([[`${VAR}: is shorter than the 64 random characters suggested`, { variable: VAR }]]);
    } finally {
      warn.mockRestore();
    }
  });
});

describe('key ring', () => {
  it('hands its resolver the variable each secret came from, and lists its key ids', async () => {
    const seen: string[] = [];
    const ring = await KeyRing.fromSecrets(new Secret('c'.repeat(40)), [new Secret('p'.repeat(40))], async (s, variable) => (seen.push(variable), s.reveal()));
    expect(seen).toEqual(['S3_STORAGE_ENCRYPTION_KEY', 'S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS']);
    const ids = [(await deriveKey('c'.repeat(40))).keyIdHex, (await deriveKey('p'.repeat(40))).keyIdHex];
    expect(ring.keyIds).toEqual(ids);
    let err: unknown;
    try {
      ring.find(Buffer.alloc(8));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownKeyIdError);
    expect((err as UnknownKeyIdError).knownKeyIds).toEqual(ids);
  });

  it('derives a secret once per process', () => {
    expect(deriveKey('once'.repeat(10))).toBe(deriveKey('once'.repeat(10)));
  });

  it('builds the ring of a configuration once', () => {
    const config = loadConfig({ S3_STORAGE_BUCKET: 'bucket-one', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: SECRET });
    const kms = fakeKms(async () => ({})).kms;
    expect(loadKeyRing(config, kms)).toBe(loadKeyRing(config, kms));
    const other = loadConfig({ S3_STORAGE_BUCKET: 'bucket-one', S3_STORAGE_REGION: 'eu-west-1', S3_STORAGE_ENCRYPTION_KEY: 'm'.repeat(64) });
    expect(loadKeyRing(other, kms)).not.toBe(loadKeyRing(config, kms));
  });
});
