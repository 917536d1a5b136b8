/**
 * The deployable stack, packaged offline (osls, no AWS credentials, no network) and read back from the
 * generated CloudFormation template: queues and DLQs, the event source, the schedule, the environment, and
 * least-privilege IAM per function — with and without an SSE-KMS key; the two hand-overs of segments (staging
 * bucket, EFS) with their parameters and without; the ingestion nodes' managed policy; bad parameters; and
 * `npm run package` exactly as the README writes it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { runChecked, runProcess } from './support/runProcess.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NAMESPACE } from '../src/core/metrics.ts';
import { describeDenials, evaluate, packageStackTo, principalsOf, readTemplate, type Template } from './support/stackPolicies.ts';

type Json = Record<string, unknown>;
interface Statement {
  Effect: string;
  Action: string[];
  Resource: unknown[];
  Condition?: Json;
}
const KMS_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:bucket-storage-alarms';
const FS_ARN = 'arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0123abcd';
const AP_SOURCES = 'arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0';
const AP_RESTORES = 'arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef1';
const dirs: string[] = [];

async function packageStack(params: Record<string, string>): Promise<Template> {
  const dir = await packageStackTo(params);
  dirs.push(dir);
  return readTemplate(dir);
}

const resources = (t: Template) => t.Resources as Record<string, { Type: string; Properties: Json; Condition?: string }>;
const statements = (t: Template, role: string) => ((resources(t)[role]!.Properties.Policies as { PolicyDocument: { Statement: Statement[] } }[])[0]!.PolicyDocument.Statement);
const actions = (t: Template, role: string) => statements(t, role).flatMap((s) => s.Action);
const env = (t: Template, fn: string) => (resources(t)[`${fn}LambdaFunction`]!.Properties.Environment as { Variables: Json }).Variables;

let plain: Template;
/** Both hand-overs (a staging bucket the stack creates, delete after upload; EFS for upload and fetch), SSE-KMS, s3:// restores. */
let sources: Template;

beforeAll(async () => {
  await runChecked(process.execPath, ['scripts/build.mjs']);
  // One after the other: concurrent osls runs in one service directory trip over each other.
  plain = await packageStack({ bucket: 'logs-2026', allBuckets: 'logs-2025,logs-2026', fetchInvokerRoleArn: 'arn:aws:iam::123456789012:role/ingest' });
  sources = await packageStack({
    bucket: 'logs-2026',
    stagingBucket: 'logs-staging',
    stagingPrefix: 'incoming',
    createStagingBucket: 'true',
    stagingExpiryDays: '3',
    deleteStagedAfterUpload: 'true',
    efsFileSystemArn: FS_ARN,
    efsAccessPointArn: AP_SOURCES,
    efsRestoreAccessPointArn: AP_RESTORES,
    restoreConcurrency: '8',
    subnetIds: 'subnet-aaa,subnet-bbb',
    securityGroupIds: 'sg-123',
    sourceRoot: '/mnt/segments',
    restoreRoot: '/mnt/restore',
    kmsKeyArn: KMS_ARN,
    restoreBucket: 'restores',
    alarmTopicArn: TOPIC,
    queueAgeAlarmSeconds: '600',
  });
}, 300_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('packaged stack', () => {
  it('queues with DLQs and redrive, visibility above the function timeout', () => {
    const r = resources(plain);
    for (const [queue, dlq] of [['SegmentsQueue', 'SegmentsDeadLetterQueue'], ['DeletionsQueue', 'DeletionsDeadLetterQueue']] as const) {
      expect(r[queue]!.Type).toBe('AWS::SQS::Queue');
      expect(r[queue]!.Properties.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] }, maxReceiveCount: 5 });
    }
    const uploadTimeout = r.UploadLambdaFunction!.Properties.Timeout as number;
    expect(r.SegmentsQueue!.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * uploadTimeout);
  });

  it('upload is fed by the segments queue with ReportBatchItemFailures; cleanup runs on a schedule', () => {
    const mappings = Object.values(resources(plain)).filter((x) => x.Type === 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(1);
    expect(mappings[0]!.Properties).toMatchObject({ EventSourceArn: { 'Fn::GetAtt': ['SegmentsQueue', 'Arn'] }, FunctionResponseTypes: ['ReportBatchItemFailures'], BatchSize: 10, MaximumBatchingWindowInSeconds: 5 });
    const rules = Object.values(resources(plain)).filter((x) => x.Type === 'AWS::Events::Rule');
    expect(rules.map((x) => x.Properties.ScheduleExpression)).toEqual(['rate(5 minutes)']);
  });

  it('functions: nodejs22.x on arm64, one bundle each, every S3_STORAGE_ variable from parameters, no plain secret', () => {
    for (const fn of ['Upload', 'Fetch', 'Cleanup']) {
      const p = resources(plain)[`${fn}LambdaFunction`]!.Properties;
      expect(p.Runtime).toBe('nodejs22.x');
      expect(p.Architectures).toEqual(['arm64']);
      expect(p.Handler).toBe(`dist/${fn.toLowerCase()}/index.handler`);
      expect(env(plain, fn)).toMatchObject({ S3_STORAGE_BUCKET: 'logs-2026', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: { Ref: 'StateBucket' }, S3_STORAGE_SEGMENTS_QUEUE_URL: { Ref: 'SegmentsQueue' }, S3_STORAGE_DELETIONS_QUEUE_URL: { Ref: 'DeletionsQueue' }, S3_STORAGE_PLAIN_OBJECTS_BEFORE: '' });
      // The grace period and the upload timeout (the age below which the sweep spares a multipart upload).
      expect(String(env(plain, fn).S3_STORAGE_DELETION_DELAY_HOURS)).toBe('72');
      expect(String(env(plain, fn).S3_STORAGE_UPLOAD_TIMEOUT_SECONDS)).toBe(String(resources(plain).UploadLambdaFunction!.Properties.Timeout));
    }
  });

  it('fetch restores with 4 ranged GETs in flight unless restoreConcurrency says otherwise; upload and cleanup are not given it', () => {
    expect(String(env(plain, 'Fetch').S3_STORAGE_RESTORE_CONCURRENCY)).toBe('4');
    expect(String(env(sources, 'Fetch').S3_STORAGE_RESTORE_CONCURRENCY)).toBe('8');
    for (const fn of ['Upload', 'Cleanup']) expect(env(plain, fn).S3_STORAGE_RESTORE_CONCURRENCY).toBeUndefined();
  });

  it('the state bucket is versioned, private, encrypted, and aborts incomplete multipart uploads', () => {
    const p = resources(plain).StateBucket!.Properties;
    expect(p.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(p.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(JSON.stringify(p.BucketEncryption)).toContain('SSEAlgorithm');
    expect(JSON.stringify(p.LifecycleConfiguration)).toContain('"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}');
  });

  it('fetch is invocable by the ingestion nodes\' role', () => {
    expect(resources(plain).FetchInvokePermission!.Properties).toMatchObject({ Action: 'lambda:InvokeFunction', Principal: 'arn:aws:iam::123456789012:role/ingest' });
  });

  it('IAM: one role per function, no wildcard action, no * resource; delete only in cleanup; fetch reads', () => {
    for (const [fn, role] of [['Upload', 'UploadRole'], ['Fetch', 'FetchRole'], ['Cleanup', 'CleanupRole']] as const) {
      expect(resources(plain)[`${fn}LambdaFunction`]!.Properties.Role).toEqual({ 'Fn::GetAtt': [role, 'Arn'] });
      for (const s of statements(plain, role)) {
        expect(s.Effect).toBe('Allow');
        for (const a of s.Action) expect(a).not.toMatch(/\*/);
        for (const res of s.Resource) {
          expect(res).not.toBe('*');
          // `arn:aws:s3:::bucket/*` is every key of one named bucket: a key wildcard, allowed; nothing broader.
          if (typeof res === 'string') expect(res).toMatch(/^arn:aws:s3:::[a-z0-9.-]+(\/\*)?$|^arn:aws:kms:/);
        }
      }
    }
    expect(actions(plain, 'UploadRole')).not.toContain('s3:DeleteObject');
    expect(actions(plain, 'FetchRole')).not.toContain('s3:DeleteObject');
    expect(actions(plain, 'CleanupRole')).toContain('s3:DeleteObject');
    expect(actions(plain, 'CleanupRole')).not.toContain('s3:AbortMultipartUpload');
    // The registry is written by upload only (it registers a bucket before its first object there): fetch writes
    // nothing, cleanup writes only its deletion marks and the size logger's state; upload may send a record that
    // can never succeed to the segments DLQ.
    expect(actions(plain, 'FetchRole')).not.toContain('s3:PutObject');
    const cleanupPuts = statements(plain, 'CleanupRole').filter((s) => s.Action.includes('s3:PutObject'));
    expect(JSON.stringify(cleanupPuts)).not.toContain('registry.json');
    expect(cleanupPuts.flatMap((s) => s.Resource.map((r) => JSON.stringify(r))).every((r) => r.includes('/_bucket-storage/deletions/*') || r.includes('/_bucket-storage/storage-size.json'))).toBe(true);
    const registryWrites = statements(plain, 'UploadRole').filter((s) => s.Action.includes('s3:PutObject') && JSON.stringify(s.Resource).includes('_bucket-storage/registry.json'));
    expect(registryWrites).toHaveLength(1);
    expect(statements(plain, 'UploadRole')).toContainEqual({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: [{ 'Fn::GetAtt': ['SegmentsDeadLetterQueue', 'Arn'] }] });
    expect(env(plain, 'Upload')).toMatchObject({ S3_STORAGE_SEGMENTS_DLQ_URL: { Ref: 'SegmentsDeadLetterQueue' } });
    // The upload's sweep lists the multipart uploads of its key.
    expect(actions(plain, 'UploadRole')).toContain('s3:ListBucketMultipartUploads');
    // Deletion marks: cleanup deletes them; upload rewrites them (cancellations) but deletes nothing.
    const markDeletes = statements(plain, 'CleanupRole').filter((s) => s.Action.includes('s3:DeleteObject') && JSON.stringify(s.Resource).includes('StateBucket'));
    expect(JSON.stringify(markDeletes)).toContain('/_bucket-storage/deletions/*');
    // Previous buckets are covered.
    expect(JSON.stringify(statements(plain, 'FetchRole'))).toContain('arn:aws:s3:::logs-2025/*');
    // SQS rights on their own queue only.
    expect(JSON.stringify(statements(plain, 'UploadRole'))).not.toContain('DeletionsQueue');
    expect(JSON.stringify(statements(plain, 'CleanupRole'))).not.toContain('SegmentsQueue');
  });

  it('KMS rights appear only when S3_STORAGE_KMS_KEY_ARN is set, on that key only', () => {
    for (const role of ['UploadRole', 'FetchRole', 'CleanupRole']) expect(actions(plain, role).filter((a) => a.startsWith('kms:'))).toEqual([]);
    const upload = statements(sources, 'UploadRole').filter((s) => s.Action.some((a) => a.startsWith('kms:')));
    expect(upload).toEqual([{ Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: [KMS_ARN] }]);
    // Fetch reads SSE-KMS objects, and writes s3:// restores (restoreBucket) under the same key.
    expect(statements(sources, 'FetchRole').filter((s) => s.Action.some((a) => a.startsWith('kms:')))).toEqual([{ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: [KMS_ARN] }]);
    expect(actions(sources, 'CleanupRole').filter((a) => a.startsWith('kms:'))).toEqual([]);
    expect(env(sources, 'Upload').S3_STORAGE_KMS_KEY_ARN).toBe(KMS_ARN);
  });
});

describe('sources the deployed functions can reach', () => {
  const names = { StateBucket: 'state', SegmentsQueue: 'segments', DeletionsQueue: 'deletions', SegmentsDeadLetterQueue: 'segments-dlq', DeletionsDeadLetterQueue: 'deletions-dlq', [`efs:${AP_SOURCES}`]: FS_ARN, [`efs:${AP_RESTORES}`]: FS_ARN };
  const grants = (t: Template, role: string, action: string) => statements(t, role).filter((s) => s.Action.includes(action));

  it('without their parameters: no staging or EFS rights, no VPC, no mount, no staging bucket, empty staging variables', () => {
    for (const fn of ['Upload', 'Fetch', 'Cleanup']) {
      const p = resources(plain)[`${fn}LambdaFunction`]!.Properties;
      expect(p.VpcConfig).toBeUndefined();
      expect(p.FileSystemConfigs).toBeUndefined();
      expect(env(plain, fn)).toMatchObject({ S3_STORAGE_STAGING_BUCKET: '', S3_STORAGE_STAGING_REGION: '', S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: '' });
    }
    for (const role of ['UploadRole', 'FetchRole', 'CleanupRole']) {
      expect(actions(plain, role).filter((a) => a.startsWith('elasticfilesystem:'))).toEqual([]);
      expect(resources(plain)[role]!.Properties.ManagedPolicyArns ?? []).toEqual([]);
    }
    expect(JSON.stringify(plain)).not.toContain('staging');
    expect(resources(plain).StagingBucket).toBeUndefined();
    expect(plain.Outputs.StagingBucketName).toBeUndefined();
  });

  it('staging bucket: upload may list it and read (and delete) under its prefix; the stack creates it with a lifecycle expiry', () => {
    expect(env(sources, 'Upload')).toMatchObject({ S3_STORAGE_STAGING_BUCKET: 'logs-staging', S3_STORAGE_STAGING_REGION: 'us-east-1', S3_STORAGE_DELETE_STAGED_AFTER_UPLOAD: 'true' });
    expect(grants(sources, 'UploadRole', 's3:GetObject').flatMap((s) => s.Resource)).toContain('arn:aws:s3:::logs-staging/incoming/*');
    expect(grants(sources, 'UploadRole', 's3:DeleteObject')).toEqual([{ Effect: 'Allow', Action: ['s3:GetObject', 's3:DeleteObject'], Resource: ['arn:aws:s3:::logs-staging/incoming/*'] }]);
    expect(grants(sources, 'UploadRole', 's3:ListBucket').flatMap((s) => s.Resource)).toContain('arn:aws:s3:::logs-staging');
    for (const role of ['FetchRole', 'CleanupRole']) expect(JSON.stringify(statements(sources, role))).not.toContain('logs-staging');
    const bucket = resources(sources).StagingBucket!;
    expect(bucket.Type).toBe('AWS::S3::Bucket');
    expect(bucket.Properties).toMatchObject({ BucketName: 'logs-staging', PublicAccessBlockConfiguration: { BlockPublicAcls: true, RestrictPublicBuckets: true } });
    expect(JSON.stringify(bucket.Properties.LifecycleConfiguration)).toContain('"Prefix":"incoming/","ExpirationInDays":3');
    expect(sources.Outputs.StagingBucketName).toEqual({ Value: { Ref: 'StagingBucket' } });
  });

  it('staging without delete-after-upload, in another region, not created by the stack: read only (stack/*.js called directly)', async () => {
    const require = createRequire(import.meta.url);
    const iam = require('../stack/iam.js') as { statements: Record<string, (o: { resolveVariable: (n: string) => Promise<unknown> }) => Promise<Statement[]>> };
    const sources = require('../stack/sources.js') as { env: Record<string, (o: { resolveVariable: (n: string) => Promise<unknown> }) => Promise<string>>; resources: (o: { resolveVariable: (n: string) => Promise<unknown> }) => Promise<Json> };
    const values: Record<string, string> = { 'param:bucket': 'logs-2026', 'param:encryptionKey': 'off', 'param:stagingBucket': 'logs-staging', 'param:stagingBucketRegion': 'eu-west-1', 'param:stagingExpiryDays': '7', 'sls:stage': 'dev', 'self:provider.region': 'us-east-1' };
    const options = { resolveVariable: async (name: string) => values[name] ?? '' };
    const upload = await iam.statements.upload!(options);
    expect(upload.filter((s) => s.Action.includes('s3:DeleteObject'))).toEqual([]);
    expect(upload).toContainEqual({ Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::logs-staging/*'] });
    expect(await sources.env.stagingRegion!(options)).toBe('eu-west-1');
    expect(await sources.env.deleteStagedAfterUpload!(options)).toBe('');
    expect(await sources.resources(options)).toEqual({});
  });

  it('EFS: upload mounts the sources read-only at S3_STORAGE_SOURCE_ROOT, fetch the restores read-write at S3_STORAGE_RESTORE_ROOT, in the VPC', () => {
    const fn = (name: string) => resources(sources)[`${name}LambdaFunction`]!.Properties;
    expect(fn('Upload').FileSystemConfigs).toEqual([{ Arn: AP_SOURCES, LocalMountPath: '/mnt/segments' }]);
    expect(fn('Fetch').FileSystemConfigs).toEqual([{ Arn: AP_RESTORES, LocalMountPath: '/mnt/restore' }]);
    for (const f of ['Upload', 'Fetch']) expect(fn(f).VpcConfig).toEqual({ SubnetIds: ['subnet-aaa', 'subnet-bbb'], SecurityGroupIds: ['sg-123'] });
    expect(fn('Cleanup').VpcConfig).toBeUndefined();
    expect(fn('Cleanup').FileSystemConfigs).toBeUndefined();
    expect(env(sources, 'Upload')).toMatchObject({ S3_STORAGE_SOURCE_ROOT: '/mnt/segments', S3_STORAGE_RESTORE_ROOT: '/mnt/restore' });
    const mount = (role: string) => statements(sources, role).filter((s) => s.Action.some((a) => a.startsWith('elasticfilesystem:')));
    expect(mount('UploadRole')).toEqual([{ Effect: 'Allow', Action: ['elasticfilesystem:ClientMount'], Resource: [FS_ARN], Condition: { StringEquals: { 'elasticfilesystem:AccessPointArn': AP_SOURCES } } }]);
    expect(mount('FetchRole')).toEqual([{ Effect: 'Allow', Action: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'], Resource: [FS_ARN], Condition: { StringEquals: { 'elasticfilesystem:AccessPointArn': AP_RESTORES } } }]);
    expect(mount('CleanupRole')).toEqual([]);
    const vpcPolicy = 'arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole';
    expect(resources(sources).UploadRole!.Properties.ManagedPolicyArns).toEqual([vpcPolicy]);
    expect(resources(sources).FetchRole!.Properties.ManagedPolicyArns).toEqual([vpcPolicy]);
    expect(resources(sources).CleanupRole!.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it('the mounts and the event source are authorised by the roles (simulated); upload could not write its mount', async () => {
    const p = principalsOf(sources, { account: '123456789012', region: 'us-east-1', names });
    const result = await evaluate(p, 'sources', []);
    expect(describeDenials(result.denied)).toBe('');
    expect(p.platform.get('upload')?.map((c) => c.action)).toEqual(expect.arrayContaining(['elasticfilesystem:ClientMount', 'sqs:ReceiveMessage']));
    expect(p.platform.get('fetch')?.map((c) => c.action)).toEqual(expect.arrayContaining(['elasticfilesystem:ClientWrite']));
    const writing = { ...p, platform: new Map([['upload', [{ action: 'elasticfilesystem:ClientWrite', resource: FS_ARN, context: { 'elasticfilesystem:AccessPointArn': AP_SOURCES } }]]]) };
    expect(describeDenials((await evaluate(writing, 'sources', [])).denied)).toContain('upload: elasticfilesystem:ClientWrite');
  });

  it('the ingestion nodes\' managed policy: send to both queues, put under the staging prefix, invoke fetch; its ARN is an output', () => {
    const policy = (t: Template) => (resources(t).IngestionNodesPolicy!.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    expect(resources(plain).IngestionNodesPolicy!.Type).toBe('AWS::IAM::ManagedPolicy');
    expect(policy(plain)).toEqual([
      { Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: [{ 'Fn::GetAtt': ['SegmentsQueue', 'Arn'] }, { 'Fn::GetAtt': ['DeletionsQueue', 'Arn'] }] },
      { Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: [{ 'Fn::GetAtt': ['FetchLambdaFunction', 'Arn'] }] },
    ]);
    expect(policy(sources)).toContainEqual({ Effect: 'Allow', Action: ['s3:PutObject', 's3:AbortMultipartUpload'], Resource: ['arn:aws:s3:::logs-staging/incoming/*'] });
    expect(plain.Outputs.IngestionNodesPolicyArn).toEqual({ Value: { Ref: 'IngestionNodesPolicy' } });
  });
});

describe('parameters', () => {
  interface Params {
    parseParams(resolveVariable: (name: string) => Promise<unknown>): Promise<unknown>;
    check(input: { resolveVariable: (name: string) => Promise<unknown>; options: { param?: string[] } }): Promise<unknown>;
  }
  const params = createRequire(import.meta.url)('../stack/params.js') as Params;
  // encryptionKey has no default: these cases give it (off) unless they are about it.
  const resolver = (values: Record<string, string>) => async (name: string) => (name === 'sls:stage' ? 'dev' : name === 'self:provider.region' ? 'us-east-1' : (({ encryptionKey: 'off', ...values })[name.replace(/^param:/, '')] ?? ''));
  const read = (values: Record<string, string>) => params.parseParams(resolver(values));
  const efs = { efsFileSystemArn: FS_ARN, efsAccessPointArn: AP_SOURCES, subnetIds: 'subnet-1', securityGroupIds: 'sg-1', sourceRoot: '/mnt/segments' };

  it.each([
    [{}, /"bucket" is required: add --param="bucket=/],
    [{ bucket: 'b-1', kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:alias/logs' }, /"kmsKeyArn" is an alias ARN .*give the key ARN/],
    [{ bucket: 'b-1', secretKmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:alias/secrets' }, /"secretKmsKeyArn" is an alias ARN/],
    [{ bucket: 'b-1', deleteStagedAfterUpload: 'true' }, /need "stagingBucket"/],
    [{ bucket: 'b-1', stagingBucket: 'b-1' }, /"stagingBucket" \(b-1\) is also a data bucket/],
    [{ bucket: 'b-1', subnetIds: 'subnet-1' }, /"subnetIds" is set without "efsAccessPointArn"/],
    [{ bucket: 'b-1', ...efs, securityGroupIds: '' }, /"securityGroupIds" is required with an EFS access point/],
    [{ bucket: 'b-1', ...efs, sourceRoot: '/data/segments' }, /"sourceRoot" must be a directory under \/mnt\//],
    [{ bucket: 'b-1', ...efs, efsAccessPointArn: 'arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/x' }, /"efsAccessPointArn" .* is not an EFS access point ARN/],
    [{ bucket: 'b-1', deletionDelayHours: '721' }, /"deletionDelayHours" is "721"; expected a whole number of hours, 0\.\.720/],
    [{ bucket: 'b-1', deletionDelayHours: '1.5' }, /"deletionDelayHours"/],
    [{ bucket: 'b-1', restoreConcurrency: '0' }, /"restoreConcurrency" is "0"; expected a whole number of ranged GETs, 1\.\.64/],
    [{ bucket: 'b-1', restoreConcurrency: '65' }, /"restoreConcurrency" is "65"/],
    [{ bucket: 'b-1', restoreConcurrency: 'four' }, /"restoreConcurrency" is "four"/],
  ] as const)('%j is refused, naming the parameter', async (values, message) => {
    await expect(read(values)).rejects.toThrow(message);
  });

  it.each([
    [{ bucket: 'b-1', encryptionKey: '' }, /"encryptionKey" has no default: pass --param="encryptionKey=kms:<base64 ciphertext>".* or --param="encryptionKey=off"/],
    [{ bucket: 'b-1', encryptionKey: 'a-plain-secret-0123456789' }, /"encryptionKey" is neither kms:<base64 ciphertext> nor off: a plain secret would sit in the template/],
    [{ bucket: 'b-1', encryptionKey: 'kms:AQICAHh0', previousEncryptionKeys: 'kms:AQIDAA==,old-plain-secret' }, /"previousEncryptionKeys" holds a value that is not kms:/],
  ] as const)('encryption %j is refused, saying what to pass', async (values, message) => {
    await expect(read(values)).rejects.toThrow(message);
  });

  it('a parameter name that is not one of the stack\'s (command line or params/<stage>.yml) is refused', async () => {
    const defaults = { bucket: '', encryptionKey: '' };
    const withFile = (file: unknown) => async (name: string) => (name === 'sls:stage' ? 'dev' : name === 'self:custom.defaultParams' ? defaults : name.startsWith('file(') ? file : name === 'param:encryptionKey' ? 'off' : name === 'param:bucket' ? 'b-1' : '');
    await expect(params.check({ resolveVariable: withFile(null), options: { param: ['bucket=b-1', 'encrpytionKey=off'] } })).rejects.toThrow(/"encrpytionKey" \(on the command line\) is not one of this stack's parameters/);
    await expect(params.check({ resolveVariable: withFile({ bukcet: 'b-1' }), options: {} })).rejects.toThrow(/"bukcet" \(in params\/dev\.yml\) is not one of this stack's parameters/);
    await expect(params.check({ resolveVariable: withFile({ bucket: 'b-1' }), options: { param: ['encryptionKey=off'] } })).resolves.toBe('checked');
  });

  it('packaging without encryptionKey fails with one line saying to pass kms: or off; with off it succeeds and says encryption is off', async () => {
    const osls = (params: string[]) => runProcess('npx', ['osls', 'package', '--package', join(dirs[0] ?? '.', `enc-${params.length}`), ...params], { env: { ...process.env, AWS_ACCESS_KEY_ID: 'none', AWS_SECRET_ACCESS_KEY: 'none', SLS_TELEMETRY_DISABLED: '1' }, timeoutMs: 180_000 });
    const refused = await osls(['--param=bucket=logs-2026']);
    expect(refused.status).not.toBe(0);
    const lines = `${refused.stdout}${refused.stderr}`.split('\n').filter((l) => l.includes('StackParameterError'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/StackParameterError: the stack parameter "encryptionKey" has no default: pass --param="encryptionKey=kms:<base64 ciphertext>" \(the secret encrypted with KMS\), or --param="encryptionKey=off" to store segments unencrypted/);
    expect(`${refused.stdout}${refused.stderr}`).not.toMatch(/^\s+at /m);
    const off = await osls(['--param=bucket=logs-2026', '--param=encryptionKey=off']);
    expect(off.status, off.stderr).toBe(0);
    expect(off.stderr).toContain('bucket-storage: encryption is off (encryptionKey=off): stage dev stores plain copies of the segments');
  }, 240_000);

  it('a stage\'s parameters live in params/<stage>.yml: packaging the stage again reuses them, --param still wins', async () => {
    const stage = `t${process.pid}`;
    const file = join('params', `${stage}.yml`);
    writeFileSync(file, `# test stage\nbucket: logs-from-file\nobjectKeyPrefix: from-file\nbatchSize: 7\n`);
    try {
      const t = readTemplate(await packageStackTo({ bucket: 'logs-from-cli' }, ['--stage', stage]).then((d) => (dirs.push(d), d)));
      expect(env(t, 'Upload')).toMatchObject({ S3_STORAGE_BUCKET: 'logs-from-cli', S3_STORAGE_OBJECT_KEY_PREFIX: 'from-file' });
      const mapping = Object.values(resources(t)).find((x) => x.Type === 'AWS::Lambda::EventSourceMapping');
      expect(mapping?.Properties.BatchSize).toBe(7);
    } finally {
      rmSync(file, { force: true });
    }
  }, 240_000);

  it('a missing parameter stops packaging with one line that says what to add, no stack trace', async () => {
    const run = await runProcess('npx', ['osls', 'package', '--package', join(dirs[0] ?? '.', 'refused')], { env: { ...process.env, AWS_ACCESS_KEY_ID: 'none', AWS_SECRET_ACCESS_KEY: 'none', SLS_TELEMETRY_DISABLED: '1' }, timeoutMs: 120_000 });
    expect(run.status).not.toBe(0);
    const output = `${run.stdout}${run.stderr}`;
    expect(output.match(/StackParameterError/g)).toHaveLength(1);
    expect(output).toContain('the stack parameter "bucket" is required: add --param="bucket=');
    expect(output).not.toMatch(/^\s+at /m);
  });
});

describe('the README\'s package command', () => {
  it('runs as written and leaves the template and the zips in .serverless/', async () => {
    const readme = readFileSync('README.md', 'utf8');
    const deploy = readme.slice(readme.indexOf('## Deploy'));
    const command = /^(npm run package[^\n#]*?)\s*(#.*)?$/m.exec(deploy)?.[1];
    expect(command).toBeDefined();
    rmSync('.serverless', { recursive: true, force: true });
    // STAGE names the stage as the README says; `example` is the stage of the committed params/example.yml.
    await runChecked('bash', ['-c', command ?? 'false'], { env: { ...process.env, STAGE: 'example', AWS_ACCESS_KEY_ID: 'none', AWS_SECRET_ACCESS_KEY: 'none', SLS_TELEMETRY_DISABLED: '1' }, timeoutMs: 240_000 });
    for (const file of ['cloudformation-template-update-stack.json', 'upload.zip', 'fetch.zip', 'cleanup.zip']) expect(existsSync(join('.serverless', file))).toBe(true);
    const template = readTemplate('.serverless');
    expect(env(template, 'Upload')).toMatchObject({ S3_STORAGE_BUCKET: 'logs-2026', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_OBJECT_KEY_PREFIX: 'cluster-a' });
  });
});

describe('alarms and dashboard', () => {
  it('alarms: both DLQs, the age of the oldest segment announcement, upload errors, cleanup failures', () => {
    const alarms = Object.fromEntries(Object.entries(resources(plain)).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm').map(([name, r]) => [name, r.Properties]));
    expect(Object.keys(alarms).sort()).toEqual(['CleanupErrorsAlarm', 'CleanupFailuresAlarm', 'DeletionsDeadLetterAlarm', 'SegmentsDeadLetterAlarm', 'SegmentsQueueAgeAlarm', 'UploadErrorsAlarm']);
    for (const [alarm, dlq] of [['SegmentsDeadLetterAlarm', 'SegmentsDeadLetterQueue'], ['DeletionsDeadLetterAlarm', 'DeletionsDeadLetterQueue']] as const) {
      expect(alarms[alarm]).toMatchObject({ Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }], Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    }
    expect(alarms.SegmentsQueueAgeAlarm).toMatchObject({ MetricName: 'ApproximateAgeOfOldestMessage', Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['SegmentsQueue', 'QueueName'] } }], Threshold: 900 });
    // The metrics of src/core/metrics.ts, with the dimensions the functions emit them under (test/metrics.test.ts).
    expect(alarms.UploadErrorsAlarm).toMatchObject({ Namespace: NAMESPACE, MetricName: 'Segments', Statistic: 'Sum', Threshold: 0, Dimensions: [{ Name: 'service', Value: 'bucket-storage' }, { Name: 'function', Value: 'upload' }, { Name: 'outcome', Value: 'failed' }] });
    expect(alarms.CleanupFailuresAlarm).toMatchObject({ Namespace: NAMESPACE, MetricName: 'DeletionsFailed', Dimensions: [{ Name: 'service', Value: 'bucket-storage' }, { Name: 'function', Value: 'cleanup' }] });
    expect(alarms.CleanupErrorsAlarm).toMatchObject({ Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'CleanupLambdaFunction' } }] });
    // Without the topic parameter, no actions.
    for (const a of Object.values(alarms)) expect(a).not.toHaveProperty('AlarmActions');
  });

  it('with alarmTopicArn, every alarm notifies that topic (alarm and OK); the age threshold is a parameter', () => {
    const alarms = Object.values(resources(sources)).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(6);
    for (const a of alarms) expect(a.Properties).toMatchObject({ AlarmActions: [TOPIC], OKActions: [TOPIC] });
    expect(resources(sources).SegmentsQueueAgeAlarm!.Properties.Threshold).toBe(600);
  });

  it('a dashboard with the upload lag, throughput and queue depths', () => {
    const body = resources(plain).Dashboard!.Properties.DashboardBody as { 'Fn::Sub': string };
    const dashboard = JSON.parse(body['Fn::Sub']) as { widgets: { properties: { title: string; metrics: unknown[][] } }[] };
    expect(dashboard.widgets.map((w) => w.properties.title)).toEqual(['Upload lag: announcement age when stored (s)', 'Upload throughput', 'Queue depths', 'Oldest message in the segments queue (s)']);
    const metricsOf = (i: number) => dashboard.widgets[i]!.properties.metrics.map((m) => `${String(m[0])}/${String(m[1])}`);
    expect(metricsOf(0)).toEqual([`${NAMESPACE}/AnnouncementAge`, `${NAMESPACE}/AnnouncementAge`]);
    expect(metricsOf(1)).toEqual([`${NAMESPACE}/SegmentBytes`, `${NAMESPACE}/UploadThroughput`, `${NAMESPACE}/Segments`]);
    expect(JSON.stringify(dashboard.widgets[2])).toContain('${SegmentsDeadLetterQueue.QueueName}');
    expect((plain.Outputs as Json).DashboardName).toEqual({ Value: { Ref: 'Dashboard' } });
  });
});
