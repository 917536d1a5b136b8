/**
 * The README is an operator's script: every command of its `sh` blocks runs as written (issue 16, acceptance 5).
 * The `npx bucket-storage …` ones and the other safe ones run here, against the embedded servers with `serve`
 * running, in the order an operator would run them; the others (AWS-only) are run as written by the test named
 * in COVERAGE, or by .ci/run. A command added to the README without a way to run it fails this test, and so does
 * an entry here for a command the README no longer shows. The configuration table names every variable and
 * every stack parameter; the troubleshooting table names every error class.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { CONFIG_VARIABLES } from '../src/core/config.ts';
import * as errors from '../src/core/errors.ts';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { formatSegmentKey, registryKey } from '../src/core/objectKeys.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers, type QueuePair } from '../src/local/embeddedServers.ts';
import { startCli, type CliChild } from './support/cliChild.ts';
import { runProcess } from './support/runProcess.ts';

const README = readFileSync('README.md', 'utf8');

/** The commands of the README's `sh` blocks, continuation lines joined, comments and blank lines dropped. */
function shCommands(markdown: string): string[] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
  return blocks.flatMap((block) =>
    block
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#')),
  );
}

/** How each README command is run as written. */
type Coverage =
  | { readonly here: true }
  | { readonly ci: true }
  | { readonly test: string; readonly marker: string; readonly because?: string };

const REHEARSAL = 'test/rehearsal.test.ts';
const COVERAGE: Readonly<Record<string, Coverage>> = {
  'npm ci': { ci: true },
  'npm start': { ci: true },
  'npm test': { ci: true },
  'aws s3api put-bucket-lifecycle-configuration --bucket logs-2026 --lifecycle-configuration \'{"Rules":[{"ID":"abort-incomplete-multipart-uploads","Status":"Enabled","Filter":{},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}\'':
    { test: REHEARSAL, marker: "readmeCommand(readme, 'aws s3api put-bucket-lifecycle-configuration')" },
  "head -c 48 /dev/urandom | base64 | tr -d '\\n' > secret.txt": { test: REHEARSAL, marker: "readmeCommand(readme, 'head -c 48 /dev/urandom')" },
  'aws kms encrypt --key-id alias/bucket-storage --plaintext fileb://secret.txt --query CiphertextBlob --output text': { test: REHEARSAL, marker: "readmeCommand(readme, 'aws kms encrypt')" },
  'aws kms describe-key --key-id alias/bucket-storage --query KeyMetadata.Arn --output text': { test: REHEARSAL, marker: "readmeCommand(readme, 'aws kms describe-key')" },
  'npm run package -- --stage "$STAGE"': { test: 'test/stack.test.ts', marker: "describe('the README\\'s package command'" },
  'npx osls deploy --stage "$STAGE" --region eu-west-1': {
    test: REHEARSAL,
    marker: 'the way `osls',
    because: "osls deploy needs an AWS account; the rehearsal does on moto_server what it does (create-stack, the zips, update-stack) with the packaged template",
  },
  'npx bucket-storage smoke --staging s3://logs-staging/smoke': { here: true },
  'aws iam attach-role-policy --role-name ingest-nodes --policy-arn "$(aws cloudformation describe-stacks --stack-name bucket-storage-dev --query "Stacks[0].Outputs[?OutputKey==\'IngestionNodesPolicyArn\'].OutputValue" --output text)"':
    { test: REHEARSAL, marker: "readmeCommand(readme, 'aws iam attach-role-policy')" },
  'npx bucket-storage ship --watch "$SEGMENT_DIR" --staging s3://logs-staging/incoming/node-1 --once': { here: true },
  'npx bucket-storage ship --deleted "$DELETED_LIST"': { here: true },
  'aws lambda invoke --function-name bucket-storage-dev-fetch --cli-binary-format raw-in-base64-out --payload \'{"dataspace":"logs","segmentId":"seg-0001","destination":"s3://logs-restores/seg-0001"}\' answer.json': {
    test: REHEARSAL,
    marker: "invoke('fetch'",
    because: 'moto cannot run a Lambda function without Docker; the rehearsal invokes the deployed fetch bundle with the created function\'s environment and an s3:// destination',
  },
  'npx bucket-storage status': { here: true },
  'npx bucket-storage status --json': { here: true },
  'npx bucket-storage verify --expect "$EXPECTED_LIST"': { here: true },
  'npx bucket-storage verify --metadata --expect "$EXPECTED_LIST"': { here: true },
  'npx bucket-storage delete --dataspace logs --segment seg-0002 --now --yes': { here: true },
  'npx bucket-storage undelete --dataspace logs --segment seg-0001': { here: true },
  'npx bucket-storage redrive --dry-run': { here: true },
  'npx bucket-storage redrive': { here: true },
  'npx bucket-storage restore --dataspace logs --segment seg-0001 --to "$S3_STORAGE_RESTORE_ROOT/seg-0001"': { here: true },
  'sha256sum "$S3_STORAGE_RESTORE_ROOT/seg-0001"': { here: true },
  'npx bucket-storage registry remove logs-2025': { here: true },
};

/**
 * Splits a command line into words as a POSIX shell does for the simple commands the README uses: '…', "…"
 * (with $VAR and ${VAR} expanded), $VAR unquoted, backslash escapes. Undefined for anything it does not know
 * (pipes, redirections, $( … ), globs): such a line runs under bash.
 */
function words(line: string, env: Readonly<Record<string, string | undefined>>): string[] | undefined {
  const out: string[] = [];
  let word: string | undefined;
  const add = (s: string) => (word = (word ?? '') + s);
  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? '';
    if (/\s/.test(c)) {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) return undefined;
      add(line.slice(i + 1, end));
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let text = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && '"\\$`'.includes(line[j + 1] ?? '')) text += line[++j];
        else if (line[j] === '$') {
          const m = /^\$(?:\{(\w+)\}|(\w+))/.exec(line.slice(j));
          if (!m || line[j + 1] === '(') return undefined;
          text += env[m[1] ?? m[2] ?? ''] ?? '';
          j += m[0].length - 1;
        } else if (line[j] === '`') return undefined;
        else text += line[j];
      }
      if (j >= line.length) return undefined;
      add(text);
      i = j;
    } else if (c === '$') {
      const m = /^\$(?:\{(\w+)\}|(\w+))/.exec(line.slice(i));
      if (!m) return undefined;
      add(env[m[1] ?? m[2] ?? ''] ?? '');
      i += m[0].length - 1;
    } else if (c === '\\') add(line[++i] ?? '');
    else if ('|&;<>()`*?[]{}~'.includes(c)) return undefined;
    else add(c);
  }
  if (word !== undefined) out.push(word);
  return out;
}

let servers: LocalServers;
let segments: QueuePair;
let root: string;
let env: Record<string, string>;
let runtime: Runtime;
let serve: CliChild | undefined;
const ran = new Set<string>();

/** Runs a README command as written: `npx bucket-storage …` through the CLI's main in this process, others under bash. */
async function runReadme(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  expect(shCommands(README), 'the README shows this command').toContain(command);
  ran.add(command);
  const argv = words(command, env);
  if (argv?.[0] === 'npx' && argv[1] === 'bucket-storage') {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const code = await main(argv.slice(2), { env, stdout, stderr, stdin: new PassThrough().end() });
    return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
  }
  const run = await runProcess('bash', ['-c', command], { env: { ...process.env, ...env }, timeoutMs: 120_000 });
  return { code: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
}

async function untilTrue(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const depth = async (url: string) => Number((await runtime.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }))).Attributes?.ApproximateNumberOfMessages ?? 0);

beforeAll(async () => {
  servers = await startLocalServers();
  for (const b of ['logs-2025', 'logs-2026', 'logs-staging', 'readme-state']) servers.createBucket(b);
  segments = servers.createQueue('readme-segments', { maxReceiveCount: 5 });
  const deletions = servers.createQueue('readme-deletions');
  root = await mkdtemp(join(tmpdir(), 'bks-readme-'));
  await Promise.all(['segments/logs', 'restores'].map((d) => mkdir(join(root, d), { recursive: true })));
  env = {
    ...servers.env(),
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    S3_STORAGE_BUCKET: 'logs-2026',
    S3_STORAGE_ENCRYPTION_KEY: 'readme-test-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ',
    S3_STORAGE_STATE_BUCKET: 'readme-state',
    S3_STORAGE_STAGING_BUCKET: 'logs-staging',
    S3_STORAGE_SEGMENTS_QUEUE_URL: segments.url,
    S3_STORAGE_SEGMENTS_DLQ_URL: segments.dlqUrl,
    S3_STORAGE_DELETIONS_QUEUE_URL: deletions.url,
    S3_STORAGE_RESTORE_ROOT: join(root, 'restores'),
    SEGMENT_DIR: join(root, 'segments'),
    DELETED_LIST: join(root, 'deleted.txt'),
    EXPECTED_LIST: join(root, 'expected.txt'),
    LOG_LEVEL: 'ERROR',
  };
  runtime = await createRuntime(env);
  // A registry as an older version left it: a bucket used before, now empty.
  const doc = { version: 1, buckets: [{ bucket: 'logs-2025', region: servers.region, firstSeen: '2025-03-01T10:00:00.000Z' }] };
  await runtime.clients.s3().send(new PutObjectCommand({ Bucket: 'readme-state', Key: registryKey(''), Body: JSON.stringify(doc) }));
  serve = startCli(['serve', '--cleanup-every', '3600'], { ...process.env, ...env });
  await serve.waitForLine(/^serve: polling/);
});
afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.exited;
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("the README's commands", () => {
  it('every sh command has a way to run as written, and every way names a README command', () => {
    const commands = shCommands(README);
    expect(commands.filter((c) => COVERAGE[c] === undefined)).toEqual([]);
    expect(Object.keys(COVERAGE).filter((c) => !commands.includes(c))).toEqual([]);
    const ci = readFileSync('.ci/run', 'utf8').split('\n').map((l) => l.trim());
    for (const [command, how] of Object.entries(COVERAGE)) {
      // .ci/run adds only output switches (npm ci --no-audit --no-fund).
      if ('ci' in how) expect(ci.some((l) => l === command || l.startsWith(`${command} --no-`)), `${command} in .ci/run`).toBe(true);
      if ('test' in how) expect(readFileSync(how.test, 'utf8'), `${how.test} runs ${command}`).toContain(how.marker);
    }
  });

  it('an operator session on the embedded servers, in order: ship, smoke, restore, verify, triage and replay, status, retire, deletions', async () => {
    // Hooking up the ingestion nodes: complete segments in the watched directory.
    const segment = join(root, 'segments', 'logs', 'seg-0001');
    await writeFile(segment, Buffer.alloc(300_000, 7));
    await writeFile(join(root, 'segments', 'logs', 'seg-0002'), Buffer.alloc(100_000, 9));
    for (const name of ['seg-0001', 'seg-0002']) await utimes(join(root, 'segments', 'logs', name), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const shipped = await runReadme('npx bucket-storage ship --watch "$SEGMENT_DIR" --staging s3://logs-staging/incoming/node-1 --once');
    expect(shipped.code, shipped.stderr).toBe(0);
    const lines = shipped.stdout.trim().split('\n').map((l) => JSON.parse(l) as { segmentId: string });
    expect(lines.sort((a, b) => a.segmentId.localeCompare(b.segmentId))).toMatchObject([
      { dataspace: 'logs', segmentId: 'seg-0001', size: 300_000 },
      { dataspace: 'logs', segmentId: 'seg-0002', size: 100_000 },
    ]);
    const current = { bucket: 'logs-2026', region: servers.region };
    const stored = async (segmentId: string) => (await runtime.store.head(current, formatSegmentKey('', { dataspace: 'logs', segmentId }))) !== undefined;

    // Deploy, step 5 (serve plays the deployed functions).
    const smoke = await runReadme('npx bucket-storage smoke --staging s3://logs-staging/smoke');
    expect(smoke.code, smoke.stderr).toBe(0);
    expect(smoke.stdout).toMatch(/^smoke: ok in /m);

    // Restore and verify.
    await untilTrue(async () => (await stored('seg-0001')) && (await stored('seg-0002')), 'both shipped segments stored');
    const restored = await runReadme('npx bucket-storage restore --dataspace logs --segment seg-0001 --to "$S3_STORAGE_RESTORE_ROOT/seg-0001"');
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ bucket: 'logs-2026', size: 300_000 });
    const sum = await runReadme('sha256sum "$S3_STORAGE_RESTORE_ROOT/seg-0001"');
    expect(sum.stdout.split(' ')[0]).toBe(createHash('sha256').update(await readFile(segment)).digest('hex'));
    await writeFile(env.EXPECTED_LIST ?? '', 'logs/seg-0001\nlogs/seg-0002\n');
    const verified = await runReadme('npx bucket-storage verify --expect "$EXPECTED_LIST"');
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    // Both shipped segments and the smoke segment (its deletion is pending), in the two registered buckets.
    expect(verified.stdout).toMatch(/^verified 3 objects in 2 buckets \(read and authenticated, .*\): 3 intact, 0 missing, 0 corrupt, 0 unreadable\n$/);
    const checked = await runReadme('npx bucket-storage verify --metadata --expect "$EXPECTED_LIST"');
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    expect(checked.stdout).toBe('verified 3 objects in 2 buckets (metadata only, no body read): 3 intact, 0 missing, 0 corrupt, 0 unreadable\n');

    // DLQ triage and replay: a malformed announcement is in the DLQ at once, with its reason.
    await runtime.clients.sqs.send(new SendMessageCommand({ QueueUrl: segments.url, MessageBody: '{"version":1,"dataspace":"logs"}' }));
    await untilTrue(async () => (await depth(segments.dlqUrl)) === 1, 'the poison announcement in the DLQ');
    const dry = await runReadme('npx bucket-storage redrive --dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ messages: 1, sample: [{ error: 'InvalidMessageError', reason: expect.stringMatching(/segmentId is required/) }] });
    const replay = await runReadme('npx bucket-storage redrive');
    expect(replay.code, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({ moved: 1, failed: 0 });

    // Keeping up: as an operator types it, through npx in a shell (a table), then as JSON.
    ran.add('npx bucket-storage status');
    const status = await runProcess('bash', ['-c', 'npx bucket-storage status'], { env: { ...process.env, ...env }, timeoutMs: 120_000 });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^logs-2025 +\S+ +0 +0 B$/m);
    expect(status.stdout).toMatch(/^logs-2026 +\S+ +3 +.* current$/m);
    // (The replayed malformed announcement is back in the DLQ at once.)
    expect(status.stdout).toMatch(/^segments +\d+ +\d+ +\d+ +DLQ after 5 receives$/m);
    const json = await runReadme('npx bucket-storage status --json');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      buckets: [{ bucket: 'logs-2025', segments: 0, registered: true }, { bucket: 'logs-2026', current: true, registered: true, segments: 3 }],
      pendingDeletions: { pending: 0, delayHours: 72 },
    });

    // Retire a bucket: the empty one leaves the registry.
    const retired = await runReadme('npx bucket-storage registry remove logs-2025');
    expect(retired.code, retired.stderr).toBe(0);
    expect(JSON.parse(retired.stdout)).toMatchObject({ removed: { bucket: 'logs-2025' } });

    // Deletions the cluster made: a pending deletion once the scheduled cleanup ran (played here), then undone.
    await writeFile(env.DELETED_LIST ?? '', 'logs/seg-0001\n');
    const deleted = await runReadme('npx bucket-storage ship --deleted "$DELETED_LIST"');
    expect([deleted.code, JSON.parse(deleted.stdout)]).toEqual([0, { announced: 1, notAnnounced: 0 }]);
    // The smoke segment's deletion announcement is in the queue too.
    const cleaned = await runCleanupOnce(runtime, { budgetMs: 30_000 });
    expect(cleaned).toMatchObject({ received: 2, marked: 2, delayHours: 72 });
    const pending = await runReadme('npx bucket-storage status --json');
    expect(JSON.parse(pending.stdout)).toMatchObject({ pendingDeletions: { pending: 2, applying: 0 } });
    const undone = await runReadme('npx bucket-storage undelete --dataspace logs --segment seg-0001');
    expect(undone.code, undone.stderr).toBe(0);
    expect(JSON.parse(undone.stdout)).toMatchObject({ dataspace: 'logs', segmentId: 'seg-0001', cancelled: [expect.stringMatching(/^_bucket-storage\/deletions\//)] });
    expect(JSON.parse((await runReadme('npx bucket-storage status --json')).stdout)).toMatchObject({ pendingDeletions: { pending: 1 } });

    // Pending deletions: one segment deleted at once, skipping the grace period.
    const now = await runReadme('npx bucket-storage delete --dataspace logs --segment seg-0002 --now --yes');
    expect(now.code, now.stderr).toBe(0);
    expect(JSON.parse(now.stdout)).toMatchObject({ dataspace: 'logs', segmentId: 'seg-0002', deletedNow: true });
    expect(await stored('seg-0002')).toBe(false);
    expect(await stored('seg-0001')).toBe(true);

    const here = Object.entries(COVERAGE).filter(([, how]) => 'here' in how).map(([c]) => c);
    expect(here.filter((c) => !ran.has(c))).toEqual([]);
  }, 240_000);
});

describe("the README's tables", () => {
  const section = (title: string) => {
    const start = README.indexOf(`\n## ${title}`);
    expect(start, `README section ${title}`).toBeGreaterThan(-1);
    const end = README.indexOf('\n## ', start + 1);
    return README.slice(start, end === -1 ? undefined : end);
  };

  it('Configuration names every variable the loader knows and every stack parameter', () => {
    const table = section('Configuration');
    const yml = readFileSync('serverless.yml', 'utf8');
    const block = (yml.split('defaultParams:\n')[1] ?? '').split(/\n(?! {4})/)[0] ?? '';
    const params = [...block.matchAll(/^ {4}(\w+):/gm)].map((m) => m[1] ?? '');
    expect(params.length).toBeGreaterThan(20);
    for (const name of [...CONFIG_VARIABLES, 'LOG_LEVEL', 'LOG_FORMAT', 'HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY']) expect(table, name).toContain(`\`${name}\``);
    for (const name of params) expect(table, name).toContain(`\`${name}\``);
  });

  it('Troubleshooting names every error class', () => {
    const table = section('Troubleshooting by error name');
    // Every concrete class of src/core/errors.ts (CodecError is the abstract base of the format's errors).
    const classes = Object.entries(errors).filter(([name, v]) => typeof v === 'function' && v.prototype instanceof errors.BucketStorageError && name !== 'CodecError').map(([name]) => name);
    expect(classes.length).toBeGreaterThan(10);
    for (const name of [...classes, 'StackParameterError', 'UsageError']) expect(table, name).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
  });
});
