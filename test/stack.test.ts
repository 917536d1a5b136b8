/**
 * The deployable stack, packaged offline (osls, no AWS credentials, no network) and read back from the
 * generated CloudFormation template: queues and DLQs, the event source, the schedule, the environment, and
 * least-privilege IAM per function — with and without an SSE-KMS key.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Json = Record<string, unknown>;
interface Statement {
  Effect: string;
  Action: string[];
  Resource: unknown[];
}
const KMS_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const dirs: string[] = [];

function packageStack(params: Record<string, string>): Json {
  const dir = mkdtempSync(join(tmpdir(), 'bks-stack-'));
  dirs.push(dir);
  const args = ['osls', 'package', '--package', dir, ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`)];
  // Dummy credentials: packaging must not need real ones (and makes no AWS call).
  execFileSync('npx', args, { env: { ...process.env, AWS_ACCESS_KEY_ID: 'none', AWS_SECRET_ACCESS_KEY: 'none', SLS_TELEMETRY_DISABLED: '1' }, stdio: 'pipe', timeout: 180_000 });
  return JSON.parse(readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Json;
}

const resources = (t: Json) => t.Resources as Record<string, { Type: string; Properties: Json; Condition?: string }>;
const statements = (t: Json, role: string) => ((resources(t)[role]!.Properties.Policies as { PolicyDocument: { Statement: Statement[] } }[])[0]!.PolicyDocument.Statement);
const actions = (t: Json, role: string) => statements(t, role).flatMap((s) => s.Action);

let plain: Json;
let kms: Json;

beforeAll(() => {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'pipe' });
  plain = packageStack({ bucket: 'logs-2026', allBuckets: 'logs-2025,logs-2026', fetchInvokerRoleArn: 'arn:aws:iam::123456789012:role/ingest' });
  kms = packageStack({ bucket: 'logs-2026', kmsKeyArn: KMS_ARN });
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
      const vars = (p.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(vars).toMatchObject({ S3_STORAGE_BUCKET: 'logs-2026', S3_STORAGE_ENCRYPTION_KEY: 'off', S3_STORAGE_STATE_BUCKET: { Ref: 'StateBucket' }, S3_STORAGE_SEGMENTS_QUEUE_URL: { Ref: 'SegmentsQueue' }, S3_STORAGE_DELETIONS_QUEUE_URL: { Ref: 'DeletionsQueue' } });
    }
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
    // Fetch writes nothing to the segment buckets: its only PutObject is on the registry object.
    const fetchPuts = statements(plain, 'FetchRole').filter((s) => s.Action.includes('s3:PutObject'));
    expect(JSON.stringify(fetchPuts)).toContain('_bucket-storage/registry.json');
    expect(JSON.stringify(fetchPuts)).not.toContain('logs-2026');
    // Previous buckets are covered.
    expect(JSON.stringify(statements(plain, 'FetchRole'))).toContain('arn:aws:s3:::logs-2025/*');
    // SQS rights on their own queue only.
    expect(JSON.stringify(statements(plain, 'UploadRole'))).not.toContain('DeletionsQueue');
    expect(JSON.stringify(statements(plain, 'CleanupRole'))).not.toContain('SegmentsQueue');
  });

  it('KMS rights appear only when S3_STORAGE_KMS_KEY_ARN is set, on that key only', () => {
    for (const role of ['UploadRole', 'FetchRole', 'CleanupRole']) expect(actions(plain, role).filter((a) => a.startsWith('kms:'))).toEqual([]);
    const upload = statements(kms, 'UploadRole').filter((s) => s.Action.some((a) => a.startsWith('kms:')));
    expect(upload).toEqual([{ Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: [KMS_ARN] }]);
    expect(statements(kms, 'FetchRole').filter((s) => s.Action.some((a) => a.startsWith('kms:')))).toEqual([{ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [KMS_ARN] }]);
    expect(actions(kms, 'CleanupRole').filter((a) => a.startsWith('kms:'))).toEqual([]);
    expect((resources(kms).UploadLambdaFunction!.Properties.Environment as { Variables: Json }).Variables.S3_STORAGE_KMS_KEY_ARN).toBe(KMS_ARN);
  });
});
