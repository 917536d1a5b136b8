/**
 * Credentials scoped as the design says, seen on the wire (moto_server): with static keys set
 * (S3_STORAGE_ACCESSKEY/SECRETKEY, e.g. a storage-only IAM user), the data buckets' requests are signed with
 * them, and every other request — SQS, KMS (the kms: secret), the state bucket (registry), the staging bucket,
 * an s3:// restore destination — with the default chain's credentials (the function's role, here
 * AWS_ACCESS_KEY_ID in the environment as Lambda sets it). The access key is read from each request's SigV4
 * Authorization header by the permission harness's recorder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCleanupOnce } from '../src/cleanup/runCleanup.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { deletionAnnouncementSchema } from '../src/core/messages.ts';
import { sendMessage } from '../src/core/queues.ts';
import { fetchSegment } from '../src/fetch/fetchSegment.ts';
import { uploadSegment } from '../src/upload/uploadSegment.ts';
import { RequestRecorder } from './support/iamRequests.ts';
import { motoAdmin } from './support/motoAdmin.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';
import { patternBytes } from './support/sourceData.ts';

const ROLE_KEY = 'ASIAFUNCTIONROLE';
const STATIC_KEY = 'AKIASTORAGEONLY';
let moto: MotoServer;
let root: string;
const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
const recorder = new RequestRecorder();

beforeAll(async () => {
  moto = await startMoto();
  root = await mkdtemp(join(tmpdir(), 'bks-credentials-'));
  // The role's credentials, where Lambda puts them: the process environment, read by the default chain.
  process.env.AWS_ACCESS_KEY_ID = ROLE_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = 'role-secret';
});
afterAll(async () => {
  moto?.stop();
  process.env.AWS_ACCESS_KEY_ID = saved.id;
  process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  if (root) await rm(root, { recursive: true, force: true });
});

describe('with static keys set', () => {
  it('SQS, KMS and the deployment\'s own buckets are signed with the role\'s credentials, the data buckets with the static keys', async () => {
    const admin = motoAdmin(moto.endpoint);
    for (const b of ['cred-data', 'cred-state', 'cred-staging', 'cred-restore']) await admin.createBucket(b);
    const deletions = await admin.createQueue('cred-deletions');
    const secret = await admin.kmsSecret(await admin.createKey(), 'credentials-test-secret-0123456789abcdefghijklmnopqrstuvwxyz');
    await admin.put('cred-staging', 'in/seg-1', patternBytes(3000, 'seg-1'));
    const env = {
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_SQS: moto.endpoint,
      AWS_ENDPOINT_URL_KMS: moto.endpoint,
      S3_STORAGE_ENDPOINT_BASE: moto.endpoint,
      S3_STORAGE_PATH_STYLE_ACCESS: 'true',
      S3_STORAGE_ACCESSKEY: STATIC_KEY,
      S3_STORAGE_SECRETKEY: 'static-secret',
      S3_STORAGE_BUCKET: 'cred-data',
      S3_STORAGE_REGION: 'us-east-1',
      S3_STORAGE_ENCRYPTION_KEY: secret,
      S3_STORAGE_STATE_BUCKET: 'cred-state',
      S3_STORAGE_STAGING_BUCKET: 'cred-staging',
      S3_STORAGE_DELETIONS_QUEUE_URL: deletions,
      LOG_LEVEL: 'SILENT',
    };
    const rt = await createRuntime(env, { clients: { instrument: recorder.as('function', 'static-keys') } });
    await uploadSegment(rt, { version: 1, dataspace: 'cred', segmentId: 'seg-1', source: 's3://cred-staging/in/seg-1' });
    await fetchSegment(rt, { dataspace: 'cred', segmentId: 'seg-1', destination: 's3://cred-restore/restored/seg-1' });
    await sendMessage(rt.clients.sqs, rt.config, { queue: 'deletions', schema: deletionAnnouncementSchema, message: { version: 1, dataspace: 'cred', segmentId: 'seg-1' }, what: 'deletion announcement' });
    expect(await runCleanupOnce(rt, { budgetMs: 30_000 })).toMatchObject({ completed: 1 });
    // Once due, the deletion is carried out (DeleteObjects on the data bucket, with the static keys).
    expect(await runCleanupOnce(rt, { budgetMs: 30_000, now: () => Date.now() + 73 * 3_600_000 })).toMatchObject({ segmentsDeleted: 1 });

    const byKey = (pick: (r: (typeof recorder.requests)[number]) => boolean) => new Set(recorder.requests.filter(pick).map((r) => r.accessKeyId));
    const services = new Set(recorder.requests.map((r) => r.service));
    expect(services).toEqual(new Set(['s3', 'sqs', 'kms']));
    expect(byKey((r) => r.service === 'sqs')).toEqual(new Set([ROLE_KEY]));
    expect(byKey((r) => r.service === 'kms')).toEqual(new Set([ROLE_KEY]));
    for (const own of ['cred-state', 'cred-staging', 'cred-restore']) expect(byKey((r) => r.bucket === own)).toEqual(new Set([ROLE_KEY]));
    expect(byKey((r) => r.bucket === 'cred-data')).toEqual(new Set([STATIC_KEY]));
    // Every kind of request was seen: registry, staged source, data bucket writes and deletes, restore, queue, KMS.
    const seen = new Set(recorder.requests.map((r) => `${r.service} ${r.operation}`));
    for (const op of ['kms Decrypt', 'sqs SendMessage', 'sqs ReceiveMessage', 's3 PutObject', 's3 GetObject', 's3 DeleteObjects']) expect(seen).toContain(op);
  });
});
