/**
 * IAM proven against every call the functions make. On moto_server (which enforces no IAM), the scenarios of
 * the upload, fetch, cleanup, switch and registry tests run again with the permission harness recording every
 * request (test/support/iamRequests.ts); each request is then evaluated against the role of the function that
 * made it in the *packaged* template of the deployment it ran under (test/support/stackPolicies.ts), plus what
 * AWS does with those roles (event source mapping, logs). Three deployments, packaged with `osls package`:
 *
 *   before-switch  bucket=perm-old                               the registry's races, uploads, a restore
 *   plain          bucket=perm-data, allBuckets=perm-old,…       no KMS: uploads (single, multipart, already
 *                                                                stored, read back, aborted, crashed attempt),
 *                                                                restores (file, range, previous bucket, s3://,
 *                                                                not found), cleanup, the nodes' announcements
 *   full           plain + SSE-KMS key, kms: secret, staging     SSE-KMS uploads and restores (file and s3://),
 *                  bucket in eu-west-1 with delete-after-upload   staged sources, a missing staged source
 *
 * Any request a role would be denied fails the test, naming the action and the resource.
 */
import { CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { logStorageSize, sizeLogStateFor } from '../src/cleanup/storageSizeLogger.ts';
import { createClients } from '../src/core/clients.ts';
import { loadConfig } from '../src/core/config.ts';
import { IntegrityError, InvalidMessageError, LocationError, SegmentNotFoundError } from '../src/core/errors.ts';
import { deletionAnnouncementSchema, segmentAnnouncementSchema, type FetchInvocation, type SegmentAnnouncement } from '../src/core/messages.ts';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { sendMessage } from '../src/core/queues.ts';
import { createRuntime, type Runtime } from '../src/core/runtime.ts';
import { S3Store } from '../src/core/s3Store.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { sqsRecord } from '../src/local/lambdaEvents.ts';
import { deadLetterPoison } from '../src/upload/deadLetter.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { iamChecks, RequestRecorder, type RecordedRequest } from './support/iamRequests.ts';
import { MOTO_ACCOUNT, motoAdmin, type MotoAdmin } from './support/motoAdmin.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';
import { patternStream } from './support/sourceData.ts';
import { describeDenials, evaluate, grantedActions, packageStackTo, principalsOf, readTemplate, resolveIntrinsics, withoutAction, type Principals } from './support/stackPolicies.ts';

const REGION = 'us-east-1';
const STAGING_REGION = 'eu-west-1';
const MiB = 1024 * 1024;
const PREFIX = 'cluster-a';
const DEPLOYMENTS = ['before-switch', 'plain', 'full'] as const;
type DeploymentName = (typeof DEPLOYMENTS)[number];
const FUNCTIONS = ['upload', 'fetch', 'cleanup'] as const;

let moto: MotoServer;
let admin: MotoAdmin;
let root: string;
const recorder = new RequestRecorder();
const principals = new Map<DeploymentName, Principals>();
const envs = new Map<DeploymentName, Record<string, string>>();

/** The environment the template gives the functions of `deployment`, resolved, with the local endpoints and roots. */
function functionEnv(p: Principals): Record<string, string> {
  const vars = resolveIntrinsics(p.template, p.deployment, p.template.Resources.UploadLambdaFunction?.Properties.Environment);
  const variables: unknown = typeof vars === 'object' && vars !== null ? Reflect.get(vars, 'Variables') : undefined;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(typeof variables === 'object' && variables !== null ? variables : {})) env[k] = String(v);
  return {
    ...env,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'role',
    AWS_SECRET_ACCESS_KEY: 'role',
    AWS_ENDPOINT_URL_SQS: moto.endpoint,
    AWS_ENDPOINT_URL_KMS: moto.endpoint,
    S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
    S3_STORAGE_PATH_STYLE_ACCESS: 'true',
    S3_STORAGE_SOURCE_ROOT: join(root, 'src'),
    S3_STORAGE_RESTORE_ROOT: join(root, 'out'),
    S3_STORAGE_PART_SIZE_MIB: '5',
    LOG_LEVEL: 'SILENT',
  };
}

/** A runtime of function `fn` in `deployment`, every client recorded. */
function runtimeOf(fn: string, deployment: DeploymentName, extra: Record<string, string> = {}): Promise<Runtime> {
  const env = envs.get(deployment);
  if (env === undefined) throw new Error(`no deployment ${deployment}`);
  return createRuntime({ ...env, ...extra }, { clients: { instrument: recorder.as(fn, deployment) } });
}

async function source(name: string, size: number): Promise<string> {
  const path = join(root, 'src', name);
  await pipeline(patternStream(size, name), createWriteStream(path));
  return `file://${path}`;
}
const announcement = (segmentId: string, src: string, extra: Partial<SegmentAnnouncement> = {}): SegmentAnnouncement => ({ version: 1, dataspace: 'perm', segmentId, source: src, ...extra });
const invocation = (segmentId: string, destination: string, extra: Partial<FetchInvocation> = {}): FetchInvocation => ({ dataspace: 'perm', segmentId, destination, ...extra });
const keyOf = (segmentId: string) => formatSegmentKey(`${PREFIX}/`, { dataspace: 'perm', segmentId });

/** The CLI's enqueue/delete path (src/cli/commands/enqueue.ts, delete.ts) as the ingestion nodes run it. */
async function nodeSends(deployment: DeploymentName, queue: 'segments' | 'deletions', message: unknown): Promise<void> {
  const config = loadConfig(envs.get(deployment));
  const sqs = createClients(config, { instrument: recorder.as('ingest', deployment) }).sqs;
  if (queue === 'segments') await sendMessage(sqs, config, { queue, schema: segmentAnnouncementSchema, message, what: 'segment announcement' });
  else await sendMessage(sqs, config, { queue, schema: deletionAnnouncementSchema, message, what: 'deletion announcement' });
}

/** The nodes stage a segment (as `aws s3 cp` would) with their own role. */
async function nodeStages(deployment: DeploymentName, key: string, size: number): Promise<void> {
  const config = loadConfig(envs.get(deployment));
  const clients = createClients(config, { instrument: recorder.as('ingest', deployment) });
  await new S3Store((r) => clients.s3AsRole(r)).put({ bucket: 'perm-staging', region: STAGING_REGION }, key, patternStream(size, key), { partSize: 5 * MiB, queueSize: 2 });
}

beforeAll(async () => {
  moto = await startMoto();
  admin = motoAdmin(moto.endpoint, REGION);
  root = await mkdtemp(join(tmpdir(), 'bks-permissions-'));
  await Promise.all([mkdir(join(root, 'src')), mkdir(join(root, 'out'))]);
  for (const b of ['perm-old', 'perm-data', 'perm-state', 'perm-restore']) await admin.createBucket(b);
  await admin.createBucket('perm-staging', STAGING_REGION);
  await admin.createQueue('perm-segments');
  await admin.createQueue('perm-deletions');
  const sseKey = await admin.createKey();
  const secretKey = await admin.createKey();
  const secret = await admin.kmsSecret(secretKey, 'permissions-test-secret-0123456789abcdefghijklmnopqrstuvwxyz');

  const common = { bucketRegion: REGION, objectKeyPrefix: PREFIX, restoreBucket: 'perm-restore' };
  const params: Record<DeploymentName, Record<string, string>> = {
    'before-switch': { ...common, bucket: 'perm-old', allBuckets: 'perm-old' },
    plain: { ...common, bucket: 'perm-data', allBuckets: 'perm-old,perm-data' },
    full: {
      ...common,
      bucket: 'perm-data',
      allBuckets: 'perm-old,perm-data',
      kmsKeyArn: sseKey,
      encryptionKey: secret,
      secretKmsKeyArn: secretKey,
      stagingBucket: 'perm-staging',
      stagingBucketRegion: STAGING_REGION,
      stagingPrefix: 'in/',
      deleteStagedAfterUpload: 'true',
    },
  };
  const names = { StateBucket: 'perm-state', SegmentsQueue: 'perm-segments', DeletionsQueue: 'perm-deletions', SegmentsDeadLetterQueue: 'perm-segments-dlq', DeletionsDeadLetterQueue: 'perm-deletions-dlq' };
  // One after the other: concurrent osls runs in one service directory trip over each other.
  for (const d of DEPLOYMENTS) {
    const p = principalsOf(readTemplate(await packageStackTo(params[d])), { account: MOTO_ACCOUNT, region: REGION, names });
    principals.set(d, p);
    envs.set(d, functionEnv(p));
  }
}, 240_000);
afterAll(async () => {
  moto?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the scenarios, recorded', () => {
  it('before the switch: cold starts find no registry; the first upload registers perm-old; a restore', async () => {
    // The first reads find no registry (404, which needs s3:ListBucket); upload HEADs the bucket and writes it.
    const [upload, fetch] = await Promise.all([runtimeOf('upload', 'before-switch'), runtimeOf('fetch', 'before-switch'), runtimeOf('cleanup', 'before-switch')]);
    for (const [id, size] of [['seg-a1', 1000], ['seg-a2', 7 * MiB], ['seg-a3', 2000]] as const) {
      expect(await uploadSegment(upload, announcement(id, await source(id, size)))).toMatchObject({ outcome: 'uploaded', bucket: 'perm-old' });
    }
    expect(await fetchSegment(fetch, invocation('seg-a1', `file://${join(root, 'out', 'a1')}`))).toMatchObject({ bucket: 'perm-old', bytesWritten: 1000 });
    const registryReads = recorder.requests.filter((r) => r.bucket === 'perm-state' && r.operation === 'GetObject');
    expect(registryReads.some((r) => r.status === 404)).toBe(true);
  });

  it('plain: uploads of every kind to perm-data', async () => {
    const upload = await runtimeOf('upload', 'plain');
    expect((await upload.registry.all()).map((b) => b.bucket)).toEqual(['perm-old', 'perm-data']);
    expect(await uploadSegment(upload, announcement('seg-b1', await source('seg-b1', 3000)))).toMatchObject({ outcome: 'uploaded', bucket: 'perm-data' });
    expect(await uploadSegment(upload, announcement('seg-b2', await source('seg-b2', 7 * MiB)))).toMatchObject({ outcome: 'uploaded' });
    // Redelivered, and already in the previous bucket.
    expect(await uploadSegment(upload, announcement('seg-a1', await source('seg-a1', 1000)))).toMatchObject({ outcome: 'already-stored', bucket: 'perm-old' });
    // Ephemeral disks: read back before acknowledging.
    const ephemeral = await runtimeOf('upload', 'plain', { USING_EPHEMERAL_DISKS: 'true' });
    expect(await uploadSegment(ephemeral, announcement('seg-b3', await source('seg-b3', 4000)))).toMatchObject({ verified: true });
    // A digest mismatch stops a multipart upload: it is aborted.
    await expect(uploadSegment(upload, announcement('seg-bad', await source('seg-bad', 7 * MiB), { sha256: 'a'.repeat(64) }))).rejects.toBeInstanceOf(IntegrityError);
    // A crashed attempt left an incomplete upload of the key: it is listed and aborted first.
    await admin.s3().send(new CreateMultipartUploadCommand({ Bucket: 'perm-data', Key: keyOf('seg-b4') }));
    await uploadSegment(upload, announcement('seg-b4', await source('seg-b4', 500)));
    // A record that can never succeed goes to the DLQ at once, from the handler's runtime.
    const poison = sqsRecord({ messageId: 'poison-1', body: '{"version":1}' }, upload.config.segmentsQueueUrl ?? '', REGION);
    const error = new InvalidMessageError('dataspace', 'segment announcement: dataspace is required');
    expect(await deadLetterPoison({ batchItemFailures: [{ itemIdentifier: 'poison-1' }] }, [{ record: poison, error }], upload.config, { sqs: upload.clients.sqs, url: upload.config.segmentsDlqUrl ?? '' })).toEqual({ batchItemFailures: [] });
    const ops = recorder.of('upload', 'plain').map((r) => r.operation);
    for (const op of ['HeadBucket', 'ListMultipartUploads', 'AbortMultipartUpload', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'PutObject', 'HeadObject', 'SendMessageBatch']) expect(ops).toContain(op);
  });

  it('plain: restores to file and s3://, ranges, from the previous bucket, and of a missing segment', async () => {
    const fetch = await runtimeOf('fetch', 'plain');
    expect(await fetchSegment(fetch, invocation('seg-b1', `file://${join(root, 'out', 'b1')}`))).toMatchObject({ bucket: 'perm-data', bytesWritten: 3000 });
    expect(await fetchSegment(fetch, invocation('seg-b2', `file://${join(root, 'out', 'b2-range')}`, { range: { start: 100, end: 65_635 } }))).toMatchObject({ bytesWritten: 65_536 });
    expect(await fetchSegment(fetch, invocation('seg-a2', `file://${join(root, 'out', 'a2')}`))).toMatchObject({ bucket: 'perm-old', bytesWritten: 7 * MiB });
    expect(await fetchSegment(fetch, invocation('seg-b2', 's3://perm-restore/restored/b2'))).toMatchObject({ bytesWritten: 7 * MiB });
    await expect(fetchSegment(fetch, invocation('seg-none', `file://${join(root, 'out', 'none')}`))).rejects.toBeInstanceOf(SegmentNotFoundError);
    // A damaged object restored to s3://: the digest fails at the end, after parts were sent: the upload is aborted.
    const upload = await runtimeOf('upload', 'plain');
    // 12 MiB, three 5 MiB parts: two are sent before the last one's digest fails (the writer sends a part only once
    // the next one is filled, so a 7 MiB object fails before any part is sent and needs no abort).
    await uploadSegment(upload, announcement('seg-b5', await source('seg-b5', 12 * MiB)));
    const stored = await admin.s3().send(new GetObjectCommand({ Bucket: 'perm-data', Key: keyOf('seg-b5') }));
    const bytes = Buffer.from((await stored.Body?.transformToByteArray()) ?? new Uint8Array());
    bytes[bytes.length - 10]! ^= 1;
    await admin.s3().send(new PutObjectCommand({ Bucket: 'perm-data', Key: keyOf('seg-b5'), Body: bytes, Metadata: stored.Metadata }));
    await expect(fetchSegment(fetch, invocation('seg-b5', 's3://perm-restore/restored/b5'))).rejects.toBeInstanceOf(IntegrityError);
    expect(recorder.of('fetch', 'plain').map((r) => r.operation)).toContain('AbortMultipartUpload');
  });

  it('plain: the nodes announce; cleanup deletes from both buckets, leaves malformed messages, dry run', async () => {
    for (const id of ['seg-a3', 'seg-b1']) await nodeSends('plain', 'deletions', { version: 1, dataspace: 'perm', segmentId: id });
    await nodeSends('plain', 'segments', announcement('seg-b9', 's3://perm-staging/in/seg-b9'));
    const cleanup = await runtimeOf('cleanup', 'plain');
    const dry = await runCleanupOnce(cleanup, { budgetMs: 60_000, dryRun: true, visibilityTimeoutSeconds: 1, waitTimeSeconds: 0 });
    expect(dry).toMatchObject({ received: 2, deleteRequests: 0 });
    await new Promise((r) => setTimeout(r, 1_100));
    // The deletions become pending marks (the stack's grace period, 72 h) …
    expect(await runCleanupOnce(cleanup, { budgetMs: 60_000 })).toMatchObject({ received: 2, completed: 2, marked: 2, deleteRequests: 0 });
    // … carried out by the first run after they are due: claimed, deleted from both buckets, removed.
    expect(await runCleanupOnce(cleanup, { budgetMs: 60_000, now: () => Date.now() + 73 * 3_600_000 })).toMatchObject({ marksApplied: 1, segmentsDeleted: 2 });
    // After its deletions, the cleanup function measures the storage used per bucket (its size logger).
    expect(await logStorageSize(cleanup, sizeLogStateFor(cleanup), { budgetMs: 60_000 })).toMatchObject({ status: 'logged' });
  });

  it('full: SSE-KMS uploads, a kms: secret, staged sources in another region deleted once stored', async () => {
    const upload = await runtimeOf('upload', 'full');
    expect(upload.keyRing.current).toBeDefined();
    for (const [id, size] of [['seg-c1', 2000], ['seg-c2', 7 * MiB]] as const) await uploadSegment(upload, announcement(id, await source(id, size)));
    await nodeStages('full', 'in/seg-c3', 6 * MiB);
    await nodeSends('full', 'segments', announcement('seg-c3', 's3://perm-staging/in/seg-c3'));
    expect(await uploadSegment(upload, announcement('seg-c3', 's3://perm-staging/in/seg-c3'))).toMatchObject({ outcome: 'uploaded', verified: true, stagedCopy: 'deleted' });
    await expect(uploadSegment(upload, announcement('seg-c4', 's3://perm-staging/in/seg-c4'))).rejects.toBeInstanceOf(LocationError);
    const staged = recorder.of('upload', 'full').filter((r) => r.bucket === 'perm-staging');
    expect(staged.map((r) => r.signedRegion)).toEqual(staged.map(() => STAGING_REGION));
    expect(recorder.of('upload', 'full').some((r) => r.operation === 'CreateMultipartUpload' && r.kmsKey !== undefined)).toBe(true);
  });

  it('full: SSE-KMS restores to file and to s3://; cleanup', async () => {
    const fetch = await runtimeOf('fetch', 'full');
    expect(await fetchSegment(fetch, invocation('seg-c2', `file://${join(root, 'out', 'c2')}`))).toMatchObject({ bytesWritten: 7 * MiB });
    expect(await fetchSegment(fetch, invocation('seg-c2', 's3://perm-restore/restored/c2'))).toMatchObject({ bytesWritten: 7 * MiB });
    await nodeSends('full', 'deletions', { version: 1, dataspace: 'perm', segmentId: 'seg-c1' });
    const cleanup = await runtimeOf('cleanup', 'full');
    expect(await runCleanupOnce(cleanup, { budgetMs: 60_000 })).toMatchObject({ completed: 1 });
    expect(await runCleanupOnce(cleanup, { budgetMs: 60_000, now: () => Date.now() + 73 * 3_600_000 })).toMatchObject({ segmentsDeleted: 1 });
    const gets = recorder.of('fetch', 'full').filter((r) => r.operation === 'GetObject' && r.bucket === 'perm-data');
    expect(gets.every((r) => r.kmsKey !== undefined)).toBe(true);
  });
});

describe('every recorded request, evaluated against the packaged template', () => {
  for (const d of DEPLOYMENTS) {
    it(`${d}: 0 requests denied for every function and for the ingestion nodes`, async () => {
      const p = principals.get(d)!;
      const result = await evaluate(p, d, recorder.requests);
      console.log(`${d}: ${Object.entries(result.perPrincipal).map(([who, c]) => `${who} ${c.requests} requests, ${c.checks} IAM checks, ${c.denied} denied`).join('; ')}`);
      expect(describeDenials(result.denied)).toBe('');
      expect(Object.keys(result.perPrincipal).sort()).toEqual([...FUNCTIONS, 'ingest'].sort());
      const active = d === 'before-switch' ? [...FUNCTIONS] : [...FUNCTIONS, 'ingest'];
      for (const who of active) expect(result.perPrincipal[who]?.requests).toBeGreaterThan(0);
    });
  }

  it.each([
    ['plain', 'upload', 's3:ListBucketMultipartUploads', 'arn:aws:s3:::perm-data'],
    ['before-switch', 'upload', 's3:ListBucket', 'arn:aws:s3:::perm-state'],
    ['plain', 'upload', 'sqs:SendMessage', `arn:aws:sqs:${REGION}:${MOTO_ACCOUNT}:perm-segments-dlq`],
    ['plain', 'cleanup', 's3:DeleteObject', `arn:aws:s3:::perm-old/${keyOf('seg-a3')}`],
    ['full', 'fetch', 'kms:GenerateDataKey', 'arn:aws:kms:'],
    ['full', 'upload', 's3:DeleteObject', 'arn:aws:s3:::perm-staging/in/seg-c3'],
    ['full', 'ingest', 'lambda:InvokeFunction', 'arn:aws:lambda:us-east-1:123456789012:function:bucket-storage-dev-fetch'],
  ] as const)('%s: without %s\'s %s the harness fails, naming it', async (d, who, action, resource) => {
    const result = await evaluate(withoutAction(principals.get(d)!, who, action), d, recorder.requests);
    const report = describeDenials(result.denied);
    expect(report).toContain(`${who}: ${action} on ${resource}`);
  });

  it('least privilege: every action a role is granted was needed by some request, but for two named reasons', async () => {
    const exercised = new Map<string, Set<string>>();
    for (const d of DEPLOYMENTS) {
      for (const [who, actions] of (await evaluate(principals.get(d)!, d, recorder.requests)).exercised) {
        for (const a of actions) (exercised.get(who) ?? exercised.set(who, new Set()).get(who)!).add(a);
      }
    }
    // Granted but not exercised here, on purpose: Lambda recreates a deleted log group with logs:CreateLogGroup;
    // a node's failed multipart put to the staging bucket is aborted with s3:AbortMultipartUpload.
    const reasons = new Set(['upload logs:CreateLogGroup', 'fetch logs:CreateLogGroup', 'cleanup logs:CreateLogGroup', 'ingest s3:AbortMultipartUpload']);
    const unused = [...FUNCTIONS, 'ingest'].flatMap((who) => [...grantedActions(principals.get('full')!, who)].filter((a) => !exercised.get(who)?.has(a)).map((a) => `${who} ${a}`));
    expect(unused.sort()).toEqual([...reasons].sort());
  });

  it('an operation the harness cannot map is an error naming it, never a silent pass', () => {
    const request: RecordedRequest = { principal: 'upload', deployment: 'plain', service: 's3', operation: 'PutBucketPolicy', signedRegion: REGION, accessKeyId: 'role', bucket: 'b', key: undefined, keys: [], queueUrl: undefined, kmsKey: undefined, status: 200 };
    expect(() => iamChecks(request, { account: MOTO_ACCOUNT, region: REGION })).toThrow(/no IAM mapping for s3 PutBucketPolicy/);
  });
});
