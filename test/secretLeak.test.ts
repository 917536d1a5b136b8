/**
 * The secret-leak check, on moto_server (S3, SQS, KMS): known secrets in every secret variable
 * (S3_STORAGE_ENCRYPTION_KEY as kms:<base64> decrypted by moto's KMS, S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS with a
 * kms: and a plain entry, S3_STORAGE_SECRETKEY), bad values around them, and the real config loader, key ring,
 * CLI and handlers driven at LOG_LEVEL DEBUG. Every log line (stdout/stderr of CLI runs, the Powertools logger's
 * output, the console) and every thrown error (message, stack, causes, inspected properties) is searched for the
 * secrets and the keys derived from them, as they are, base64 (any alignment), hex, JSON- and URL-escaped.
 * The last block shows the check fails when a secret is deliberately logged.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { CreateKeyCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/core/config.ts';
import { deriveKey } from '../src/core/keyRing.ts';
import { logger } from '../src/core/logger.ts';
import { createRuntime, resetRuntime } from '../src/core/runtime.ts';
import { lambdaContext } from '../src/local/lambdaContext.ts';
import { scheduledEvent, sqsRecord } from '../src/local/lambdaEvents.ts';
import { capture, errorTexts, findLeaks, formsOf, type Captured, type SecretForm } from './support/leakCheck.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';

// Fresh every run, so no fixture, snapshot or log of an earlier run can hold them.
const run = randomBytes(6).toString('hex');
const SECRETS = {
  current: `leak-current-${run}-0123456789abcdefghijklmnopqrstuvwxyz/+=ABCDEFGH`,
  previousKms: `leak-previous-kms-${run}-0123456789abcdefghijklmnopqrstuvwxyzABCD`,
  previousPlain: `leak-previous-plain-${run}-0123456789abcdefghijklmnopqrstuvwxyzAB`,
  secretAccessKey: `leak-secret-access-key-${run}-wJalrXUtnFEMI/K7MDENG/bPxRfiCY`,
};

let moto: MotoServer | undefined;
let dir: string;
let env: Record<string, string>;
let forms: SecretForm[];
const captured: Captured[] = [];
const savedEnv = { ...process.env };

async function kmsCiphertext(kms: KMSClient, keyId: string | undefined, plain: string): Promise<string> {
  const out = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from(plain, 'utf8') }));
  return `kms:${Buffer.from(out.CiphertextBlob ?? new Uint8Array()).toString('base64')}`;
}

beforeAll(async () => {
  moto = await startMoto();
  const credentials = { accessKeyId: 'AKIALEAKTEST', secretAccessKey: 'setup-only' };
  const common = { endpoint: moto.endpoint, region: 'us-east-1', credentials };
  const s3 = new S3Client({ ...common, forcePathStyle: true });
  const sqs = new SQSClient(common);
  const kms = new KMSClient(common);
  for (const bucket of ['leak-bucket', 'leak-state']) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const segments = await sqs.send(new CreateQueueCommand({ QueueName: 'leak-segments' }));
  const deletions = await sqs.send(new CreateQueueCommand({ QueueName: 'leak-deletions' }));
  const key = await kms.send(new CreateKeyCommand({ Description: 'leak test' }));
  dir = await mkdtemp(join(tmpdir(), 'bks-leak-'));
  await writeFile(join(dir, 'segment'), randomBytes(100_000));
  env = {
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_SQS: moto.endpoint,
    AWS_ENDPOINT_URL_KMS: moto.endpoint,
    S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_ACCESSKEY: 'AKIALEAKTEST',
    S3_STORAGE_SECRETKEY: SECRETS.secretAccessKey,
    S3_STORAGE_BUCKET: 'leak-bucket',
    S3_STORAGE_REGION: 'us-east-1',
    S3_STORAGE_STATE_BUCKET: 'leak-state',
    S3_STORAGE_ENCRYPTION_KEY: await kmsCiphertext(kms, key.KeyMetadata?.KeyId, SECRETS.current),
    S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: JSON.stringify([await kmsCiphertext(kms, key.KeyMetadata?.KeyId, SECRETS.previousKms), SECRETS.previousPlain]),
    S3_STORAGE_SEGMENTS_QUEUE_URL: segments.QueueUrl ?? '',
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.QueueUrl ?? '',
    S3_STORAGE_SOURCE_ROOT: dir,
    S3_STORAGE_RESTORE_ROOT: dir,
    LOG_LEVEL: 'DEBUG',
  };
  // The secrets themselves and the master keys derived from the encryption secrets.
  forms = Object.entries(SECRETS).flatMap(([name, value]) => formsOf(name, value));
  for (const name of ['current', 'previousKms', 'previousPlain'] as const) forms.push(...formsOf(`${name} master key`, (await deriveKey(SECRETS[name])).master));
}, 60_000);

afterAll(async () => {
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  resetRuntime();
  moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI as an operator does and keeps everything it printed. */
async function cli(args: string[], extraEnv: Record<string, string> = {}, input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['bin/bucket-storage.mjs', ...args], { env: { ...savedEnv, ...env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  child.stdin.end(input);
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const label = `bucket-storage ${args.join(' ')}${Object.keys(extraEnv).length ? ` with ${Object.keys(extraEnv).join(', ')} changed` : ''}`;
  captured.push({ source: `stdout of ${label}`, text: stdout }, { source: `stderr of ${label}`, text: stderr });
  return { status, stdout, stderr };
}

/** In-process: runs `fn` under capture with the test's environment in process.env. */
async function inProcess(source: string, fn: () => Promise<unknown>, extraEnv: Record<string, string> = {}) {
  Object.assign(process.env, env, extraEnv);
  resetRuntime();
  const result = await capture(source, fn);
  captured.push(...result.texts);
  return result;
}

describe('no secret in any log line or error message', () => {
  it('the config loader: the config printed whole, and a bad value in every variable around the secrets', async () => {
    const config = loadConfig(env);
    captured.push({ source: 'inspect(config)', text: inspect(config, { depth: 8, showHidden: true }) }, { source: 'JSON.stringify(config)', text: JSON.stringify(config) }, { source: 'String(config secrets)', text: `${String(config.previousKeys)} ${String(config.credentials?.secretAccessKey)}` });
    const bad: Record<string, string> = {
      S3_STORAGE_BUCKET: 'Bad_Bucket',
      S3_STORAGE_REGION: 'EU WEST',
      S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `["${SECRETS.previousPlain}", 3]`,
      S3_STORAGE_KMS_KEY_ARN: 'alias/mine',
      S3_STORAGE_OBJECT_KEY_PREFIX: 'a/../b',
      S3_STORAGE_ACCESSKEY: 'has space',
      S3_STORAGE_ENDPOINT_BASE: 'ftp://host',
      S3_STORAGE_PATH_STYLE_ACCESS: 'yes',
      USING_EPHEMERAL_DISKS: 'maybe',
      S3_STORAGE_STATE_BUCKET: 'x',
      S3_STORAGE_SEGMENTS_QUEUE_URL: 'segments',
      S3_STORAGE_DELETIONS_QUEUE_URL: 'not a url',
      S3_STORAGE_SOURCE_ROOT: 'relative/dir',
      S3_STORAGE_RESTORE_ROOT: './restore',
      S3_STORAGE_CHUNK_LOG2: '25',
      S3_STORAGE_PART_SIZE_MIB: '4',
      S3_STORAGE_TRANSFER_CONCURRENCY: '0',
      S3_STORAGE_RESTORE_CONCURRENCY: 'four',
      S3_STORAGE_CLEANUP_DRY_RUN: 'dry',
      // A typo in a secret variable's name: the value must not be echoed either.
      S3_STORAGE_ENCRYPTION_KEYS: SECRETS.current,
      S3_STORAGE_SECRET_KEY: SECRETS.secretAccessKey,
      LOG_LEVEL: 'LOUD',
    };
    const secretShapes = [
      { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `[${SECRETS.previousPlain}` },
      { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `${SECRETS.previousPlain},,${SECRETS.current}` },
      { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `${SECRETS.previousPlain},off` },
      { S3_STORAGE_ACCESSKEY: '' },
      { S3_STORAGE_ACCESSKEY: 'has space' },
    ];
    let refused = 0;
    for (const change of [...Object.entries(bad).map(([k, v]) => ({ [k]: v })), ...secretShapes]) {
      const { error } = await capture(`loadConfig with ${Object.keys(change).join(', ')} changed`, async () => loadConfig({ ...env, ...change }));
      expect(error, JSON.stringify(Object.keys(change))).toBeInstanceOf(Error);
      captured.push(...errorTexts(`loadConfig with ${Object.keys(change).join(', ')} changed`, error));
      refused++;
    }
    expect(refused).toBe(Object.keys(bad).length + secretShapes.length);
    expect(findLeaks(captured, forms)).toEqual([]);
  });

  it('the key ring: kms: secrets decrypted through moto KMS at DEBUG; kms: values KMS refuses', async () => {
    const good = await inProcess('createRuntime with kms: secrets', async () => {
      const rt = await createRuntime(env);
      captured.push({ source: 'inspect(runtime)', text: inspect(rt, { depth: 4 }) }, { source: 'inspect(keyRing)', text: inspect(rt.keyRing, { depth: 8, showHidden: true }) });
      expect(rt.keyRing.current?.keyIdHex).toBe((await deriveKey(SECRETS.current)).keyIdHex);
      expect(rt.keyRing.keyIds).toHaveLength(3);
    });
    expect(good.error).toBeUndefined();
    for (const [name, value] of [
      ['S3_STORAGE_ENCRYPTION_KEY', `kms:${SECRETS.current}`],
      ['S3_STORAGE_ENCRYPTION_KEY', `kms:${Buffer.from(SECRETS.current).toString('base64')}`],
      ['S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS', JSON.stringify([SECRETS.previousPlain, `kms:${Buffer.from(SECRETS.previousKms).toString('base64')}`])],
    ] as const) {
      const bad = await inProcess(`createRuntime with a refused ${name}`, () => createRuntime({ ...env, [name]: value }));
      expect(bad.error).toMatchObject({ name: 'ConfigError', variable: name });
    }
    expect(findLeaks(captured, forms)).toEqual([]);
  });

  it('the handlers at DEBUG: upload (good, poison, malformed), fetch (good, missing, invalid), cleanup; and a cold start that fails', async () => {
    const { handler: upload } = await import('../functions/upload.ts');
    const { handler: fetch } = await import('../functions/fetch.ts');
    const { handler: cleanup } = await import('../functions/cleanup.ts');
    const queue = env.S3_STORAGE_SEGMENTS_QUEUE_URL ?? '';
    const record = (messageId: string, body: string) => sqsRecord({ messageId, body }, queue, 'us-east-1');
    const announcement = (segmentId: string, source: string) => JSON.stringify({ version: 1, dataspace: 'leak', segmentId, source });
    const event = { Records: [record('m-good', announcement('seg-1', `file://${join(dir, 'segment')}`)), record('m-missing', announcement('seg-2', `file://${join(dir, 'missing')}`)), record('m-bad', '{"version":1,')] };
    const uploaded = await inProcess('upload handler', async () => expect((await upload(event, lambdaContext('upload'))).batchItemFailures).toHaveLength(2));
    expect(uploaded.error).toBeUndefined();
    expect(uploaded.written).toMatch(/segment stored/);
    expect(uploaded.written).toMatch(/segment not stored/);
    const fetched = await inProcess('fetch handler', () => fetch({ dataspace: 'leak', segmentId: 'seg-1', destination: `file://${join(dir, 'restored')}` }, lambdaContext('fetch')));
    expect(fetched.error).toBeUndefined();
    for (const invocation of [{ dataspace: 'leak', segmentId: 'never', destination: `file://${join(dir, 'x')}` }, { dataspace: '../x', segmentId: 's', destination: 'file:///etc/passwd' }]) {
      const failed = await inProcess(`fetch handler with ${JSON.stringify(invocation)}`, () => fetch(invocation, lambdaContext('fetch')));
      expect(failed.error).toBeInstanceOf(Error);
    }
    const cleaned = await inProcess('cleanup handler', () => cleanup(scheduledEvent('us-east-1'), lambdaContext('cleanup', 60_000)));
    expect(cleaned.error).toBeUndefined();
    const cold = await inProcess('fetch handler, cold start with a refused kms: value', () => fetch({ dataspace: 'leak', segmentId: 'seg-1', destination: `file://${join(dir, 'y')}` }, lambdaContext('fetch')), {
      S3_STORAGE_ENCRYPTION_KEY: `kms:${Buffer.from(SECRETS.current).toString('base64')}`,
    });
    expect(cold.error).toMatchObject({ name: 'ConfigError' });
    expect(findLeaks(captured, forms)).toEqual([]);
  });

  it('the CLI: every command, good and failing, and bad configurations', async () => {
    const events = join(dir, 'fetch-event.json');
    await writeFile(events, JSON.stringify({ dataspace: 'leak', segmentId: 'never', destination: `file://${join(dir, 'z')}` }));
    const kmsRefused = { S3_STORAGE_ENCRYPTION_KEY: `kms:${Buffer.from(SECRETS.current).toString('base64')}` };
    const runs: [string[], Record<string, string>, string, (status: number | null) => boolean][] = [
      [['encrypt', '--dataspace', 'leak', '--segment', 'cli'], {}, randomBytes(70_000).toString('base64'), (s) => s === 0],
      [['decrypt', '--dataspace', 'leak', '--segment', 'cli'], {}, 'not an object', (s) => s === 1],
      [['status'], {}, '', (s) => s === 0],
      [['enqueue', '--dataspace', 'leak', '--segment', 'cli', '--source', `file://${join(dir, 'segment')}`], {}, '', (s) => s === 0],
      [['delete', '--dataspace', 'leak', '--segment', 'cli'], {}, '', (s) => s === 0],
      [['restore', '--dataspace', 'leak', '--segment', 'never', '--to', `file://${join(dir, 'never')}`], {}, '', (s) => s === 1],
      [['invoke', 'fetch', '--event', events], {}, '', (s) => s === 1],
      [['invoke', 'cleanup', '--event', 'events/cleanup-scheduled.json'], {}, '', (s) => s === 0],
      [['encrypt', '--dataspace', 'leak', '--segment', 'cli'], kmsRefused, 'x', (s) => s === 1],
      [['status'], kmsRefused, '', (s) => s === 1],
      [['status'], { S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: `[${SECRETS.previousPlain}` }, '', (s) => s === 1],
      [['status'], { S3_STORAGE_ACCESSKEY: '' }, '', (s) => s === 1],
      [['status'], { S3_STORAGE_ENDPOINT_BASE: 'http://127.0.0.1:9' }, '', (s) => s === 1],
    ];
    // Three at a time: each run starts a node process.
    const statuses: boolean[] = [];
    for (let i = 0; i < runs.length; i += 3) {
      const batch = runs.slice(i, i + 3);
      const done = await Promise.all(batch.map(([args, change, input]) => cli(args, change, input)));
      done.forEach((r, j) => statuses.push(batch[j]?.[3](r.status) ?? false));
    }
    // serve after enqueue: it uploads the announced segment and runs cleanup once.
    const serve = await cli(['serve', '--until-idle', '1', '--cleanup-every', '1']);
    expect(serve.status).toBe(0);
    expect(statuses.map((ok, i) => (ok ? 'ok' : runs[i]?.[0].join(' ')))).toEqual(runs.map(() => 'ok'));
    // Something was captured: answers, logs and one-line errors naming variables.
    const all = captured.map((c) => c.text).join('\n');
    expect(all).toMatch(/S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS/);
    expect(all).toMatch(/S3_STORAGE_ENCRYPTION_KEY: a kms: secret could not be decrypted/);
    expect(all).toMatch(/SegmentNotFoundError/);
    expect(findLeaks(captured, forms)).toEqual([]);
  });
});

describe('the check itself fails when a secret is deliberately logged', () => {
  it('a secret in a log line, its base64 inside a longer blob, a master key in an error cause, and a CLI run that prints one are all found', async () => {
    const texts: Captured[] = [];
    const logged = await capture('deliberate logger line', async () => logger.info('deliberately leaking', { key: SECRETS.current }));
    texts.push(...logged.texts);
    const blob = await capture('deliberate base64 blob', async () => logger.warn('blob', { blob: Buffer.concat([Buffer.from('x'), Buffer.from(SECRETS.secretAccessKey)]).toString('base64') }));
    texts.push(...blob.texts);
    const master = (await deriveKey(SECRETS.previousPlain)).master.toString('hex');
    const thrown = await capture('deliberate error', async () => {
      throw new Error('outer', { cause: new Error(`inner with ${master}`) });
    });
    texts.push(...thrown.texts);
    const hook = join(dir, 'leaky-hook.mjs');
    await writeFile(hook, "process.stderr.write(`debug: ${Buffer.from(process.env.S3_STORAGE_SECRETKEY ?? '').toString('hex')}\\n`);\n");
    const child = spawnSync(process.execPath, ['--import', hook, 'bin/bucket-storage.mjs', 'key', '--dataspace', 'd', '--segment', 's'], { env: { ...savedEnv, ...env }, encoding: 'utf8' });
    texts.push({ source: 'stderr of a leaky CLI run', text: child.stderr });

    const leaks = findLeaks(texts, forms);
    const found = new Set(leaks.map((l) => `${l.secret} ${l.form.replace(/ \(offset \d\)/, '')} ${l.source.split(':')[0]}`));
    expect(found).toContain('current as is deliberate logger line');
    expect(found).toContain('secretAccessKey base64 deliberate base64 blob');
    expect(found).toContain('previousPlain master key hex deliberate error');
    expect(found).toContain('secretAccessKey hex stderr of a leaky CLI run');
    // And nothing else: the real code around these lines leaked nothing.
    expect([...new Set(leaks.map((l) => l.source.split(':')[0]))].sort()).toEqual(['deliberate base64 blob', 'deliberate error', 'deliberate logger line', 'stderr of a leaky CLI run']);
  });
});
