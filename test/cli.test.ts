/** The CLI as an operator runs it: a child process, stdin → stdout, one line on stderr on failure. */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError, wholeNumberOption } from '../src/cli/command.ts';
import { errorLine } from '../src/cli/main.ts';
import { RegistryError } from '../src/core/errors.ts';
import { registryKey } from '../src/core/objectKeys.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { runProcess } from './support/runProcess.ts';
import { patternStream } from './support/sourceData.ts';

const SECRET = 'cli-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP';
const env = { ...process.env, S3_STORAGE_ENCRYPTION_KEY: SECRET };
let dir: string;

function cli(args: string[], input: { file?: string; stdoutFile?: string } = {}, extraEnv: Record<string, string> = {}) {
  const stdin = input.file ? openSync(input.file, 'r') : 'ignore';
  const stdout = input.stdoutFile ? openSync(input.stdoutFile, 'a') : 'pipe';
  const run = spawnSync(process.execPath, ['bin/bucket-storage.mjs', ...args], { env: { ...env, ...extraEnv }, stdio: [stdin, stdout, 'pipe'], encoding: 'utf8', maxBuffer: 1 << 20 });
  if (typeof stdin === 'number') closeSync(stdin);
  if (typeof stdout === 'number') closeSync(stdout);
  return run;
}

/** The CLI run without blocking this process's event loop (spawnSync would, for the whole run). */
async function cliAsync(args: string[], input: { file?: string } = {}, extraEnv: Record<string, string> = {}) {
  const stdinFd = input.file ? openSync(input.file, 'r') : undefined;
  try {
    return await runProcess(process.execPath, ['bin/bucket-storage.mjs', ...args], { env: { ...env, ...extraEnv }, ...(stdinFd !== undefined ? { stdinFd } : {}), timeoutMs: 60_000 });
  } finally {
    if (stdinFd !== undefined) closeSync(stdinFd);
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(path)) hash.update(c as Buffer);
  return hash.digest('hex');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bks-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bucket-storage CLI', () => {
  it('encrypt | decrypt of a 100 MiB file is byte-exact', async () => {
    const plain = join(dir, 'plain');
    await pipeline(patternStream(100 * 1024 * 1024, 'cli'), createWriteStream(plain));
    const out = join(dir, 'roundtrip');
    // A real shell pipe between two processes.
    const child = spawn('/bin/sh', ['-c', `node bin/bucket-storage.mjs encrypt --dataspace d --segment s < "${plain}" | node bin/bucket-storage.mjs decrypt --dataspace d --segment s > "${out}"`], { env, stdio: 'inherit' });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(plain));
  });

  it('decrypt of a tampered file exits 1 with one line and cuts its output file back', () => {
    const plain = join(dir, 'small');
    writeFileSync(plain, Buffer.alloc(3 * 65536 + 10, 1));
    const sealed = join(dir, 'small.bks');
    expect(cli(['encrypt', '--dataspace', 'd', '--segment', 's', '--chunk-log2', '16'], { file: plain, stdoutFile: sealed }).status).toBe(0);
    const bytes = readFileSync(sealed);
    const at = 48 + 2 * (65536 + 16) + 9; // in chunk 2: chunks 0 and 1 were already written
    bytes[at] = (bytes[at] ?? 0) ^ 1;
    const tampered = join(dir, 'tampered.bks');
    writeFileSync(tampered, bytes);
    const out = join(dir, 'out');
    writeFileSync(out, 'kept\n'); // what the file held before: appending output is cut back to this
    const run = cli(['decrypt', '--dataspace', 'd', '--segment', 's'], { file: tampered, stdoutFile: out });
    expect(run.status).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/AuthenticationError: authentication failed at chunk 2/);
    expect(readFileSync(out, 'utf8')).toBe('kept\n');
  });

  it('a wrong key fails with the unknown key id; a previous key decrypts', () => {
    const plain = join(dir, 'k');
    writeFileSync(plain, 'segment bytes');
    const sealed = join(dir, 'k.bks');
    cli(['encrypt', '--dataspace', 'd', '--segment', 's'], { file: plain, stdoutFile: sealed });
    const wrong = cli(['decrypt', '--dataspace', 'd', '--segment', 's'], { file: sealed }, { S3_STORAGE_ENCRYPTION_KEY: 'another-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS' });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/UnknownKeyIdError/);
    const rotated = cli(['decrypt', '--dataspace', 'd', '--segment', 's'], { file: sealed }, { S3_STORAGE_ENCRYPTION_KEY: 'new-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW', S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: SECRET });
    expect(rotated.status).toBe(0);
    expect(rotated.stdout).toBe('segment bytes');
    expect(wrong.stderr + rotated.stderr).not.toContain(SECRET);
  });

  it('key prints the object key; bad identifiers name the field', () => {
    expect(cli(['key', '--dataspace', 'logs', '--segment', 'seg-0001']).stdout).toBe('edb3/bks/logs/seg-0001\n');
    expect(cli(['key', '--dataspace', 'logs', '--segment', 'seg-0001'], {}, { S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-a' }).stdout).toBe('cluster-a/edb3/bks/logs/seg-0001\n');
    const bad = cli(['key', '--dataspace', 'a/b', '--segment', 's']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/dataspace "a\/b" contains a character "\/"/);
    const missing = cli(['key', '--dataspace', 'x']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--segment is required/);
  });

  it('--chunk-log2 outside the bounds of the format exits 2 naming them', () => {
    for (const value of ['15', '25', 'x']) {
      const run = cli(['encrypt', '--dataspace', 'd', '--segment', 's', '--chunk-log2', value]);
      expect(run.status).toBe(2);
      expect(run.stderr).toMatch(new RegExp(`--chunk-log2 ${value}: expected a whole number 16\\.\\.24`));
    }
  });

  it('encrypt with the key off fails clearly; an unknown command exits 2', () => {
    const plain = join(dir, 'k');
    const off = cli(['encrypt', '--dataspace', 'd', '--segment', 's'], { file: plain }, { S3_STORAGE_ENCRYPTION_KEY: 'off' });
    expect(off.status).toBe(1);
    expect(off.stderr).toMatch(/S3_STORAGE_ENCRYPTION_KEY is off/);
    expect(cli(['frobnicate']).status).toBe(2);
    expect(statSync(plain).size).toBeGreaterThan(0);
  });

  it('encrypt with stdin a directory exits non-zero and writes nothing', async () => {
    const run = await cliAsync(['encrypt', '--dataspace', 'd', '--segment', 's'], { file: dir });
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^bucket-storage encrypt: stdin is a directory/);
  });

  it('numeric options take decimal digits only: 0x10, 1e1, +16 and 16.0 are refused', async () => {
    const run = await cliAsync(['encrypt', '--dataspace', 'd', '--segment', 's', '--chunk-log2', '0x10'], { file: '/dev/null' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--chunk-log2 0x10: expected a whole number 16\.\.24 in decimal digits/);
    for (const bad of ['0x10', '1e1', '+16', '16.0', ' 16', '0b10', '']) {
      expect(() => wholeNumberOption({ values: { n: bad } }, 'n', 1, 100), bad).toThrow(UsageError);
    }
    expect(wholeNumberOption({ values: { n: '16' } }, 'n', 1, 100)).toBe(16);
    expect(wholeNumberOption({ values: {} }, 'n', 1, 100)).toBeUndefined();
  });

  it("a failing command prints one line on stderr: the AWS SDK's Node version warning is not printed", async () => {
    const run = await cliAsync(['delete', '--dataspace', 'd', '--segment', 's'], {}, { S3_STORAGE_BUCKET: 'some-bucket', S3_STORAGE_REGION: 'us-east-1', S3_STORAGE_ENCRYPTION_KEY: 'off' });
    expect(run.status).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual(['bucket-storage delete: ConfigError: S3_STORAGE_DELETIONS_QUEUE_URL is not set; deletion announcements are sent to it and cleanup drains it']);
  });

  it('error lines escape line breaks and control characters instead of cutting, and are bounded', () => {
    expect(errorLine('status', new RegistryError('registry is not JSON (Unexpected token \'x\', "{"a":\nx}" is not valid JSON); restore it'))).toBe(
      'bucket-storage status: RegistryError: registry is not JSON (Unexpected token \'x\', "{"a":\\nx}" is not valid JSON); restore it',
    );
    expect(errorLine('x', new Error('a\u0007b\r\tc'))).toBe('bucket-storage x: a\\u0007b\\r\\tc');
    expect(errorLine('x', new Error('y'.repeat(10_000))).length).toBeLessThan(4100);
  });
});

describe('bucket-storage CLI against a server', () => {
  let servers: LocalServers;
  beforeAll(async () => {
    servers = await startLocalServers({ port: 0 });
    servers.createBucket('cli-state');
    servers.createBucket('cli-data');
  });
  afterAll(async () => servers?.stop());

  it('a registry error with an embedded newline is printed whole, on one line', async () => {
    const runtime = await createRuntime({ ...servers.env(), S3_STORAGE_BUCKET: 'cli-data', S3_STORAGE_ENCRYPTION_KEY: 'off' });
    await runtime.store.putSmall({ bucket: 'cli-state', region: servers.region }, registryKey(''), '{"a":\nx}');
    // Asynchronously: the embedded server answers from this very process.
    const run = await promisify(execFile)(process.execPath, ['bin/bucket-storage.mjs', 'status'], {
      env: { ...env, ...servers.env(), S3_STORAGE_BUCKET: 'cli-data', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: 'cli-state' },
      encoding: 'utf8',
    }).catch((err: { code: number; stderr: string }) => err);
    expect(run).toMatchObject({ code: 1 });
    const lines = (run as { stderr: string }).stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^bucket-storage status: RegistryError: registry s3:\/\/cli-state\/_bucket-storage\/registry\.json is not JSON \(.*\\nx.*\); it was damaged or edited by hand\. Restore it from the state bucket's versions; it is never reset automatically$/);
  });
});
