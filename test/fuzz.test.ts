/**
 * Hostile input, fuzzed: announcements, deletion messages, fetch invocations, stored object bytes and file
 * locations, and configurations. Every case must end in a value or a typed BucketStorageError (never another
 * exception, never a crash) and no path may escape its root. No secret may appear in any error: the fuzzed
 * configurations carry the secret in every secret variable, and the decryptor's key ring holds the key derived
 * from it; errors are searched for both in every form (test/support/leakCheck.ts).
 * FUZZ_RUNS sets the cases per kind (default 10,000, the bounded CI form). The chaos suite's summary gets the
 * number of cases run, counted as they run.
 */
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/core/config.ts';
import { parseRegistry } from '../src/core/bucketRegistry.ts';
import { BucketStorageError, RegistryError } from '../src/core/errors.ts';
import { KeyRing } from '../src/core/keyRing.ts';
import { resolveExistingInsideRoot, resolveNewInsideRoot } from '../src/core/confinement.ts';
import { parseLocation } from '../src/core/locations.ts';
import { deletionAnnouncementSchema, fetchInvocationSchema, parseJsonWith, segmentAnnouncementSchema } from '../src/core/messages.ts';
import { Secret } from '../src/core/secret.ts';
import { createDecryptStream, createEncryptStream } from '../src/core/format/index.ts';
import { recordChaos } from './chaos/summary.ts';
import { findLeaks, formsOf, type SecretForm } from './support/leakCheck.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const SECRET = 'fuzz-secret-7f3a9c1e5b2d8f4a6c0e9b3d7f1a5c8e2b6d0f4a8c3e7b1d5f9a2c6e0b4d8f3a';
const SECRET_ACCESS_KEY = 'fuzz-secret-access-key-wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLE';
/** The secrets' forms; the master key derived from SECRET is added once derived (the decryptor's ring holds it). */
const secretForms: SecretForm[] = [...formsOf('encryption secret', SECRET), ...formsOf('secret access key', SECRET_ACCESS_KEY)];

/** Cases run, per kind, counted as each runs (the chaos summary's fuzzing row). */
const cases = new Map<string, number>();
const count = (kind: string) => cases.set(kind, (cases.get(kind) ?? 0) + 1);
afterAll(() => {
  const total = [...cases.values()].reduce((a, b) => a + b, 0);
  recordChaos({ scenario: `fuzzing: ${[...cases.keys()].join(', ')}`, faults: { 'fuzz cases': total }, note: [...cases].map(([k, n]) => `${k} ${n}`).join(', ') });
});

/** Fails the test if any form of a secret is in the message of `err` or of its causes (cheap enough for every case;
 * test/secretLeak.test.ts inspects errors whole). */
function expectNoSecretIn(err: unknown): void {
  const texts = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) texts.push({ source: `fuzzed case, cause ${depth}`, text: `${e.name}: ${e.message}` });
  expect(findLeaks(texts, secretForms)).toEqual([]);
}

/**
 * Runs `fn`; returns 'ok' or the typed error; anything else fails the test. `secretsReach`: the code under test
 * was handed the secrets, so its errors are searched for them (elsewhere the search could not fail).
 */
function classify(fn: () => unknown, secretsReach = false): 'ok' | BucketStorageError {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (!(err instanceof BucketStorageError)) throw new Error(`untyped error: ${String(err)}`, { cause: err });
    if (secretsReach) expectNoSecretIn(err);
    return err;
  }
}

const identifierish = fc.oneof(
  fc.string({ maxLength: 140 }),
  fc.constantFrom('..', '.', 'a/b', 'a\u0000b', 'ok-id', 'x'.repeat(129), '\u202e', 'é', '-x', '%2e%2e'),
);
const locationish = fc.oneof(
  fc.string(),
  fc.constantFrom('file:///etc/passwd', 'file:///src/../../etc/shadow', 's3://bucket/key', 's3://b/k', 'file://host/x', 's3://Bad_Bucket/k', 'file:///a%00b'),
  fc.webUrl(),
);
const anyJsonValue = fc.oneof(fc.jsonValue(), fc.string(), fc.integer(), fc.double());

function messageArbitrary(fields: Record<string, fc.Arbitrary<unknown>>) {
  // Mostly near-valid objects (each field hostile or missing), plus arbitrary JSON and arbitrary text.
  const record = fc.record(fields, { requiredKeys: [] });
  const withExtra = fc.tuple(record, fc.dictionary(fc.string({ maxLength: 8 }), anyJsonValue, { maxKeys: 2 })).map(([r, extra]) => ({ ...extra, ...r }));
  return fc.oneof(
    { weight: 6, arbitrary: withExtra.map((o) => JSON.stringify(o)) },
    { weight: 2, arbitrary: anyJsonValue.map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 2, arbitrary: fc.string({ maxLength: 300 }) },
  );
}

describe('fuzzed messages', () => {
  it(`segment announcements: ${RUNS} cases, typed errors only`, () => {
    const arb = messageArbitrary({
      version: fc.oneof(fc.constant(1), anyJsonValue),
      dataspace: identifierish,
      segmentId: identifierish,
      source: locationish,
      size: fc.oneof(fc.nat(), fc.integer(), fc.double(), anyJsonValue),
      sha256: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string()),
    });
    fc.assert(
      fc.property(arb, (text) => {
        count('announcements');
        const r = classify(() => parseJsonWith(segmentAnnouncementSchema, text, 'segment announcement'));
        if (r === 'ok') {
          const m = parseJsonWith(segmentAnnouncementSchema, text, 'segment announcement');
          expect(m.dataspace).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
          expect(m.dataspace).not.toContain('..');
          expect(m.segmentId).not.toContain('/');
        }
      }),
      { numRuns: RUNS },
    );
  });

  it(`deletion announcements: ${RUNS} cases, typed errors only`, () => {
    const arb = messageArbitrary({ version: fc.oneof(fc.constant(1), anyJsonValue), dataspace: identifierish, segmentId: identifierish });
    fc.assert(fc.property(arb, (text) => void (count('deletions'), classify(() => parseJsonWith(deletionAnnouncementSchema, text, 'deletion announcement')))), { numRuns: RUNS });
  });

  it(`fetch invocations: ${RUNS} cases, typed errors only`, () => {
    const arb = messageArbitrary({
      dataspace: identifierish,
      segmentId: identifierish,
      destination: locationish,
      range: fc.oneof(fc.record({ start: fc.integer(), end: fc.integer() }), anyJsonValue),
    });
    fc.assert(fc.property(arb, (text) => void (count('fetch invocations'), classify(() => parseJsonWith(fetchInvocationSchema, text, 'fetch invocation')))), { numRuns: RUNS });
  });
});

describe('fuzzed registry object', () => {
  it(`registry documents: ${RUNS} cases, RegistryError or a valid registry, never a crash`, () => {
    const entry = fc.record({ bucket: fc.oneof(fc.constantFrom('logs-a', 'logs-b'), fc.string({ maxLength: 70 })), region: fc.oneof(fc.constant('eu-west-1'), fc.string()), firstSeen: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()) }, { requiredKeys: [] });
    const doc = fc.record({ version: fc.oneof(fc.constant(1), anyJsonValue), buckets: fc.oneof(fc.array(entry, { maxLength: 4 }), anyJsonValue) }, { requiredKeys: [] });
    const text = fc.oneof({ weight: 6, arbitrary: doc.map((d) => JSON.stringify(d)) }, { weight: 2, arbitrary: fc.string({ maxLength: 200 }) }, { weight: 2, arbitrary: anyJsonValue.map((v) => JSON.stringify(v) ?? 'null') });
    fc.assert(
      fc.property(text, (t) => {
        count('registry objects');
        const r = classify(() => parseRegistry(t, 'registry'));
        if (r === 'ok') {
          const parsed = parseRegistry(t, 'registry');
          expect(parsed.buckets.length).toBeGreaterThan(0);
        } else expect(r).toBeInstanceOf(RegistryError);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('fuzzed file locations', () => {
  const base = mkdtempSync(join(tmpdir(), 'bks-fuzz-'));
  const root = join(base, 'root');
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'sub', 'seg'), 'x');
  writeFileSync(join(base, 'outside'), 'secret');
  symlinkSync(join(base, 'outside'), join(root, 'escape-link'));
  symlinkSync(base, join(root, 'escape-dir'));
  const segment = fc.constantFrom('..', '.', 'sub', 'seg', 'escape-link', 'escape-dir', 'outside', '%2e%2e', '', 'root', 'x\u0000');
  const pathArb = fc.array(segment, { maxLength: 6 }).map((parts) => `file://${root}/${parts.join('/')}`);
  const urlArb = fc.oneof(pathArb, locationish);

  it(`never resolves outside the root: ${RUNS} cases`, async () => {
    await fc.assert(
      fc.asyncProperty(urlArb, async (url) => {
        count('file locations');
        for (const resolve of [resolveExistingInsideRoot, resolveNewInsideRoot]) {
          try {
            const loc = parseLocation('source', url);
            if (loc.kind !== 'file') continue;
            const real = await resolve(loc.path, root, 'S3_STORAGE_SOURCE_ROOT');
            const rel = relative(root, real);
            expect(rel.startsWith('..')).toBe(false);
          } catch (err) {
            if (!(err instanceof BucketStorageError)) throw err;
          }
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('fuzzed object bytes', () => {
  const identity = { dataspace: 'fuzz', segmentId: 'seg-1' };
  async function decrypt(ring: KeyRing, bytes: Buffer, plaintextSize?: number): Promise<Buffer | BucketStorageError> {
    const out: Buffer[] = [];
    try {
      const stream = Readable.from([bytes]).pipe(createDecryptStream({ keyRing: ring, identity, ...(plaintextSize !== undefined ? { plaintextSize } : {}) }));
      for await (const c of stream) out.push(c as Buffer);
      return Buffer.concat(out);
    } catch (err) {
      if (!(err instanceof BucketStorageError)) throw new Error(`untyped error: ${String(err)}`, { cause: err });
      expectNoSecretIn(err);
      return err;
    }
  }

  it(`random and adversarial bytes: ${RUNS} cases, only typed errors, never accepted`, async () => {
    const ring = await KeyRing.fromSecrets(new Secret(SECRET), [], async (s) => s.reveal());
    const key = ring.current!;
    secretForms.push(...formsOf('master key', key.master));
    const plaintext = randomBytes(3 * 65536 + 11);
    const chunks: Buffer[] = [];
    for await (const c of Readable.from([plaintext]).pipe(createEncryptStream({ key, identity, chunkLog2: 16 }))) chunks.push(c as Buffer);
    const valid = Buffer.concat(chunks);
    const mutation = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
        const b = Buffer.from(valid);
        b[at] = (b[at] ?? 0) ^ x;
        return b;
      }),
      fc.nat(valid.length - 1).map((n) => valid.subarray(0, n)),
      fc.tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([at, ins]) => Buffer.concat([valid.subarray(0, at), Buffer.from(ins), valid.subarray(at)])),
    );
    await fc.assert(
      fc.asyncProperty(mutation, fc.boolean(), async (bytes, sizeKnown) => {
        count('object bytes');
        const r = await decrypt(ring, bytes, sizeKnown ? plaintext.length : undefined);
        // Any accepted input must be exactly the plaintext (a mutation can only be accepted if it is a no-op).
        if (Buffer.isBuffer(r)) expect(r.equals(plaintext)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 600_000);
});

describe('fuzzed configurations', () => {
  const secretVariables = { S3_STORAGE_ENCRYPTION_KEY: SECRET, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `old-key-0123456789abcdef,${SECRET}`, S3_STORAGE_ACCESSKEY: 'AKIAFUZZ', S3_STORAGE_SECRETKEY: SECRET_ACCESS_KEY };
  const variables = ['S3_STORAGE_BUCKET', 'S3_STORAGE_REGION', 'S3_STORAGE_KMS_KEY_ARN', 'S3_STORAGE_OBJECT_KEY_PREFIX', 'S3_STORAGE_ENDPOINT_BASE', 'S3_STORAGE_PATH_STYLE_ACCESS', 'USING_EPHEMERAL_DISKS', 'S3_STORAGE_STATE_BUCKET', 'S3_STORAGE_SEGMENTS_QUEUE_URL', 'S3_STORAGE_SOURCE_ROOT', 'S3_STORAGE_CHUNK_LOG2', 'S3_STORAGE_PART_SIZE_MIB', 'S3_STORAGE_RESTORE_CONCURRENCY', 'LOG_LEVEL', 'S3_STORAGE_TYPO'];
  // Hostile values for the other variables, and the secret variables broken around the secret.
  const secretShapes = fc.constantFrom<Record<string, string>>(
    {},
    { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `[${SECRET}` },
    { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `["${SECRET}", 7]` },
    { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `${SECRET},,off` },
    { S3_STORAGE_ACCESSKEY: '' },
    { S3_STORAGE_ACCESSKEY: 'bad key id' },
    { S3_STORAGE_ENCRYPTION_KEYS: SECRET },
  );
  const env = fc.tuple(fc.dictionary(fc.constantFrom(...variables), fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('eu-west-1', 'logs-bucket', 'true', '16', '/abs', 'http://127.0.0.1:9', 'DEBUG')), { maxKeys: 6 }), secretShapes);

  // A fifth of RUNS: each case validates a whole configuration and searches its error or its printout.
  const configRuns = Math.ceil(RUNS / 5);
  it(`configurations: ${configRuns} cases with the secrets set, a typed ConfigError or a config, never a secret in either`, () => {
    fc.assert(
      fc.property(env, ([others, shape]) => {
        count('configurations');
        const input = { S3_STORAGE_BUCKET: 'logs-bucket', S3_STORAGE_REGION: 'eu-west-1', ...secretVariables, ...others, ...shape };
        const r = classify(() => loadConfig(input), true);
        if (r === 'ok') {
          const config = loadConfig(input);
          expect(findLeaks([{ source: 'config', text: `${inspect(config, { depth: 8, showHidden: true })} ${JSON.stringify(config)}` }], secretForms)).toEqual([]);
        }
      }),
      { numRuns: configRuns },
    );
  });
});
