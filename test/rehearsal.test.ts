/**
 * A deploy rehearsal on moto_server. The stack is packaged (`osls package`, as `npm run package` does) and
 * deployed the way `osls deploy` deploys it — create-stack with the deployment-bucket template, the zips uploaded
 * to that bucket, update-stack with the full template — because `osls deploy` itself stops at moto's
 * ValidateTemplate, which refuses cfn-lint warnings that AWS accepts. The created resources are read back with
 * the services' own APIs. Then the deployed zips (downloaded from the deployment bucket and unzipped, not the
 * source tree) run in node with exactly the environment of the created functions (GetFunctionConfiguration),
 * plus what Lambda adds (region, the role's credentials) and AWS_ENDPOINT_URL pointing at moto:
 * an SQS event stores a segment staged in the staging bucket the stack created, a fetch invocation restores it
 * to the restore bucket, a cleanup run deletes it. The README's `aws` commands run here as written.
 *
 * What moto (5.2) does not model is checked in the template instead: its CloudFormation records
 * AWS::Lambda::Permission, AWS::S3::BucketPolicy and AWS::CloudWatch::Alarm without creating anything (no
 * physical id: the schedule's permission, the deployment bucket's policy, the alarms of test/stack.test.ts), and creates S3 buckets without their VersioningConfiguration,
 * PublicAccessBlockConfiguration and LifecycleConfiguration (the state and staging buckets'); it has no VPC or EFS
 * behind Lambda, so the EFS hand-over is checked by test/stack.test.ts.
 */
import { CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, DescribeStacksCommand, UpdateStackCommand, type Stack } from '@aws-sdk/client-cloudformation';
import { CreateAliasCommand, DecryptCommand } from '@aws-sdk/client-kms';
import { CreateRoleCommand, GetRolePolicyCommand, IAMClient, ListAttachedRolePoliciesCommand, ListRolePoliciesCommand } from '@aws-sdk/client-iam';
import { GetFunctionConfigurationCommand, LambdaClient, ListEventSourceMappingsCommand } from '@aws-sdk/client-lambda';
import { GetBucketEncryptionCommand, GetBucketLifecycleConfigurationCommand, GetBucketVersioningCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DeleteMessageCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSegmentKey } from '../src/core/objectKeys.ts';
import { sqsRecord } from '../src/local/lambdaEvents.ts';
import { MOTO_ACCOUNT, motoAdmin, type MotoAdmin } from './support/motoAdmin.ts';
import { startMoto, type MotoServer } from './support/motoServer.ts';
import { patternBytes } from './support/sourceData.ts';
import { packageStackTo, readTemplate, type Template } from './support/stackPolicies.ts';

const run = promisify(execFile);
const REGION = 'us-east-1';
const STACK = 'bucket-storage-dev';
const MiB = 1024 * 1024;
/** What the operator creates before deploying: the data bucket (brought, not created by the stack), a restore bucket. */
const DATA_BUCKET = 'logs-2026';
const RESTORE_BUCKET = 'logs-2026-restores';
const STAGING_BUCKET = 'logs-2026-staging';

let moto: MotoServer;
let admin: MotoAdmin;
let work: string;
let packaged: string;
let template: Template;
let cfn: CloudFormationClient;
let lambda: LambdaClient;
let iam: IAMClient;
let sseKey: string;
const physical = new Map<string, string>();
/** The node flags each deployed function's process started with (through its exec wrapper). */
const nodeFlags = new Map<string, string[]>();
const credentials = { accessKeyId: 'operator', secretAccessKey: 'operator' };

async function waitFor(status: string): Promise<Stack> {
  for (let i = 0; i < 120; i++) {
    const stack = (await cfn.send(new DescribeStacksCommand({ StackName: STACK }))).Stacks?.[0];
    if (stack?.StackStatus === status) return stack;
    if (stack?.StackStatus?.endsWith('FAILED') || stack?.StackStatus?.includes('ROLLBACK')) throw new Error(`stack ${STACK}: ${stack.StackStatus} ${stack.StackStatusReason ?? ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`stack ${STACK} did not reach ${status} within 60 s`);
}

/** The `aws` CLI against moto, as an operator would run it (fails with an instruction when it is missing). */
async function awsShell(command: string, cwd?: string): Promise<string> {
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'operator', AWS_SECRET_ACCESS_KEY: 'operator', AWS_DEFAULT_REGION: REGION, AWS_ENDPOINT_URL: moto.endpoint };
  try {
    return (await run('bash', ['-c', command], { env, timeout: 60_000, ...(cwd ? { cwd } : {}) })).stdout.trim();
  } catch (err) {
    if (/aws: command not found/.test(String(err))) throw new Error("the aws CLI is not installed: these tests run the README's aws commands; install it with: pip install awscli");
    throw err;
  }
}

/** A README command that starts with `prefix` (inside a code block or inline code). */
function readmeCommand(readme: string, prefix: string): string {
  const line = readme.split('\n').find((l) => l.trimStart().startsWith(prefix)) ?? new RegExp('`(' + prefix + '[^`]*)`').exec(readme)?.[1];
  if (line === undefined) throw new Error(`README: no command starting with ${prefix}`);
  return line.trim().replace(/`$/, '');
}

/** Runs a deployed handler: a fresh node process, the function's environment, the unzipped bundle. */
async function invoke(fn: 'upload' | 'fetch' | 'cleanup', event: unknown): Promise<unknown> {
  const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: physical.get(`${fn[0]!.toUpperCase()}${fn.slice(1)}LambdaFunction`) }));
  const [file, exported] = (config.Handler ?? '').split(/\.(?=[^.]+$)/);
  const code = join(work, 'deployed', fn);
  const answer = join(work, `${fn}-answer.json`);
  const runner = `
    const { ${exported}: handler } = await import(${JSON.stringify(join(code, `${file}.mjs`))});
    const deadline = Date.now() + ${(config.Timeout ?? 60) * 1000};
    const context = { functionName: ${JSON.stringify(config.FunctionName)}, functionVersion: '$LATEST', invokedFunctionArn: ${JSON.stringify(config.FunctionArn)},
      memoryLimitInMB: '${config.MemorySize}', awsRequestId: 'rehearsal', logGroupName: '/aws/lambda/${config.FunctionName}', logStreamName: 'rehearsal',
      callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => deadline - Date.now() };
    const result = await handler(JSON.parse(process.env.REHEARSAL_EVENT), context);
    (await import('node:fs')).writeFileSync(${JSON.stringify(answer)}, JSON.stringify(result ?? null));
    (await import('node:fs')).writeFileSync(${JSON.stringify(`${answer}.execArgv`)}, JSON.stringify(process.execArgv));`;
  const env = {
    // Exactly the created function's environment …
    ...config.Environment?.Variables,
    // … what Lambda adds to it (the role's credentials: moto accepts any) …
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ACCESS_KEY_ID: `${fn}-role`,
    AWS_SECRET_ACCESS_KEY: `${fn}-role`,
    AWS_LAMBDA_FUNCTION_NAME: config.FunctionName ?? fn,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(config.MemorySize),
    PATH: process.env.PATH ?? '/usr/bin',
    // … and the one change for the rehearsal: every AWS endpoint is moto.
    AWS_ENDPOINT_URL: moto.endpoint,
    REHEARSAL_EVENT: JSON.stringify(event),
  };
  // Lambda starts the runtime's node through the function's exec wrapper, from the unzipped code (/var/task).
  const wrapper = config.Environment?.Variables?.AWS_LAMBDA_EXEC_WRAPPER;
  if (wrapper === undefined) throw new Error(`${fn} has no AWS_LAMBDA_EXEC_WRAPPER: its node would start without --single-threaded-gc`);
  await run(wrapper.replace(/^\/var\/task\//, `${code}/`), [process.execPath, '--input-type=module', '-e', runner], { env, cwd: code, timeout: 120_000 });
  nodeFlags.set(fn, JSON.parse(await readFile(`${answer}.execArgv`, 'utf8')) as string[]);
  return JSON.parse(await readFile(answer, 'utf8'));
}

beforeAll(async () => {
  moto = await startMoto();
  admin = motoAdmin(moto.endpoint, REGION);
  work = await mkdtemp(join(tmpdir(), 'bks-rehearsal-'));
  cfn = new CloudFormationClient({ endpoint: moto.endpoint, region: REGION, credentials });
  lambda = new LambdaClient({ endpoint: moto.endpoint, region: REGION, credentials });
  iam = new IAMClient({ endpoint: moto.endpoint, region: REGION, credentials });
  // Before the deploy, the operator brings the data bucket and a restore bucket, and KMS keys.
  await admin.createBucket(DATA_BUCKET);
  await admin.createBucket(RESTORE_BUCKET);
  sseKey = await admin.createKey();
  const secretKey = await admin.createKey();
  const secret = await admin.kmsSecret(secretKey, 'rehearsal-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123456789');
  await run(process.execPath, ['scripts/build.mjs'], { timeout: 120_000 });
  packaged = await packageStackTo({
    bucket: DATA_BUCKET,
    bucketRegion: REGION,
    encryptionKey: secret,
    secretKmsKeyArn: secretKey,
    kmsKeyArn: sseKey,
    restoreBucket: RESTORE_BUCKET,
    stagingBucket: STAGING_BUCKET,
    createStagingBucket: 'true',
    stagingPrefix: 'incoming',
    deleteStagedAfterUpload: 'true',
    // The rehearsal's cleanup carries the deletion out in the run that marks it (the grace period has its tests).
    deletionDelayHours: '0',
  });
  template = readTemplate(packaged);
}, 300_000);
afterAll(async () => {
  moto?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('deploy rehearsal on moto_server', () => {
  it('the packaged stack reaches CREATE_COMPLETE, then UPDATE_COMPLETE with the zips in the deployment bucket', async () => {
    await cfn.send(new CreateStackCommand({ StackName: STACK, TemplateBody: await readFile(join(packaged, 'cloudformation-template-create-stack.json'), 'utf8') }));
    expect((await waitFor('CREATE_COMPLETE')).StackStatus).toBe('CREATE_COMPLETE');
    const created = (await cfn.send(new DescribeStackResourcesCommand({ StackName: STACK }))).StackResources ?? [];
    const deploymentBucket = created.find((r) => r.LogicalResourceId === 'ServerlessDeploymentBucket')?.PhysicalResourceId;
    expect(deploymentBucket).toBeDefined();
    for (const fn of ['Upload', 'Fetch', 'Cleanup']) {
      const code = template.Resources[`${fn}LambdaFunction`]!.Properties.Code as { S3Key: string };
      await admin.s3().send(new PutObjectCommand({ Bucket: deploymentBucket, Key: code.S3Key, Body: await readFile(join(packaged, `${fn.toLowerCase()}.zip`)) }));
    }
    await cfn.send(new UpdateStackCommand({ StackName: STACK, TemplateBody: await readFile(join(packaged, 'cloudformation-template-update-stack.json'), 'utf8'), Capabilities: ['CAPABILITY_IAM'] }));
    const stack = await waitFor('UPDATE_COMPLETE');
    for (const r of (await cfn.send(new DescribeStackResourcesCommand({ StackName: STACK }))).StackResources ?? []) {
      if (r.LogicalResourceId && r.PhysicalResourceId) physical.set(r.LogicalResourceId, r.PhysicalResourceId);
    }
    const outputs = Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
    expect(Object.keys(outputs)).toEqual(expect.arrayContaining(['SegmentsQueueUrl', 'DeletionsQueueUrl', 'StateBucketName', 'IngestionNodesPolicyArn', 'StagingBucketName']));
    expect(outputs.StagingBucketName).toBe(STAGING_BUCKET);
    // Every resource of the template was created (the dashboard too), except the types moto keeps no model of
    // (checked statically).
    const unmodelled = Object.entries(template.Resources).filter(([, r]) => ['AWS::Lambda::Permission', 'AWS::S3::BucketPolicy', 'AWS::CloudWatch::Alarm'].includes(r.Type)).map(([id]) => id);
    const missing = Object.keys(template.Resources).filter((id) => !physical.has(id) && !unmodelled.includes(id) && !template.Resources[id]!.Type.startsWith('AWS::Lambda::Version'));
    expect(missing).toEqual([]);
    expect(template.Resources.CleanupLambdaPermissionEventsRuleSchedule1?.Properties).toMatchObject({ Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com' });
  });

  it('reads back the queues and their redrive, the event source mapping, the roles, the state and staging buckets', async () => {
    const queueUrl = async (id: string) => (await admin.sqs.send(new GetQueueUrlCommand({ QueueName: (physical.get(id) ?? '').split('/').pop() }))).QueueUrl;
    for (const [queue, dlq] of [['SegmentsQueue', 'SegmentsDeadLetterQueue'], ['DeletionsQueue', 'DeletionsDeadLetterQueue']] as const) {
      const attributes = (await admin.sqs.send(new GetQueueAttributesCommand({ QueueUrl: await queueUrl(queue), AttributeNames: ['All'] }))).Attributes ?? {};
      const dlqArn = (await admin.sqs.send(new GetQueueAttributesCommand({ QueueUrl: await queueUrl(dlq), AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
      expect(JSON.parse(attributes.RedrivePolicy ?? '{}')).toMatchObject({ deadLetterTargetArn: dlqArn, maxReceiveCount: 5 });
      expect(Number(attributes.VisibilityTimeout)).toBe(queue === 'SegmentsQueue' ? 6 * 900 : 1800);
    }
    const mappings = ((await lambda.send(new ListEventSourceMappingsCommand({}))).EventSourceMappings ?? []).filter((m) => m.FunctionArn?.endsWith(`:function:${physical.get('UploadLambdaFunction')}`));
    expect(mappings).toHaveLength(1);
    const segmentsArn = (await admin.sqs.send(new GetQueueAttributesCommand({ QueueUrl: await queueUrl('SegmentsQueue'), AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
    expect(mappings[0]).toMatchObject({ EventSourceArn: segmentsArn, BatchSize: 10 });
    // Roles: one per function, with the policy the template resolved against the created resources.
    const state = physical.get('StateBucket') ?? '';
    const policyOf = async (id: string) => {
      const role = physical.get(id) ?? '';
      const names = (await iam.send(new ListRolePoliciesCommand({ RoleName: role }))).PolicyNames ?? [];
      expect(names).toHaveLength(1);
      return decodeURIComponent((await iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: names[0] }))).PolicyDocument ?? '');
    };
    const upload = await policyOf('UploadRole');
    expect(upload).toContain('s3:ListBucketMultipartUploads');
    expect(upload).toContain(`arn:aws:s3:::${state}`);
    expect(upload).toContain(`arn:aws:s3:::${STAGING_BUCKET}/incoming/*`);
    expect(await policyOf('FetchRole')).toContain(`arn:aws:s3:::${RESTORE_BUCKET}/*`);
    expect(await policyOf('CleanupRole')).toContain('s3:DeleteObject');
    expect((await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: physical.get('UploadRole') }))).AttachedPolicies ?? []).toEqual([]);
    for (const fn of ['Upload', 'Fetch', 'Cleanup']) {
      const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: physical.get(`${fn}LambdaFunction`) }));
      expect(config).toMatchObject({ Runtime: 'nodejs22.x', Handler: `dist/${fn.toLowerCase()}/index.handler` });
      expect(config.Role).toContain(physical.get(`${fn}Role`));
      expect(config.Environment?.Variables).toMatchObject({ S3_STORAGE_BUCKET: DATA_BUCKET, S3_STORAGE_STATE_BUCKET: state, S3_STORAGE_STAGING_BUCKET: STAGING_BUCKET, S3_STORAGE_KMS_KEY_ARN: sseKey });
    }
    // The buckets exist with their encryption; moto's CloudFormation does not apply versioning, public access
    // blocks or lifecycle rules to the buckets it creates, so those are checked in the template.
    for (const bucket of [state, STAGING_BUCKET]) {
      const encryption = await admin.s3().send(new GetBucketEncryptionCommand({ Bucket: bucket }));
      expect(encryption.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('AES256');
    }
    expect((await admin.s3().send(new GetBucketVersioningCommand({ Bucket: state }))).Status).toBeUndefined();
    expect(template.Resources.StateBucket?.Properties).toMatchObject({ VersioningConfiguration: { Status: 'Enabled' }, PublicAccessBlockConfiguration: { BlockPublicAcls: true, RestrictPublicBuckets: true } });
    expect(JSON.stringify(template.Resources.StagingBucket?.Properties.LifecycleConfiguration)).toContain('"Prefix":"incoming/","ExpirationInDays":7');
  });

  it('the deployed zips, with the created functions\' environment: an SQS event stores a staged segment, fetch restores it, cleanup deletes it', async () => {
    // The zips as deployed: from the deployment bucket, unzipped.
    const deploymentBucket = physical.get('ServerlessDeploymentBucket');
    for (const fn of ['upload', 'fetch', 'cleanup'] as const) {
      const code = template.Resources[`${fn[0]!.toUpperCase()}${fn.slice(1)}LambdaFunction`]!.Properties.Code as { S3Key: string };
      const zip = await (await admin.s3().send(new GetObjectCommand({ Bucket: deploymentBucket, Key: code.S3Key }))).Body?.transformToByteArray();
      await writeFile(join(work, `${fn}.zip`), zip ?? new Uint8Array());
      await mkdir(join(work, 'deployed', fn), { recursive: true });
      try {
        await run('unzip', ['-q', '-o', join(work, `${fn}.zip`), '-d', join(work, 'deployed', fn)]);
      } catch (err) {
        if (/ENOENT/.test(String(err))) throw new Error('unzip is not installed: the rehearsal unzips the deployed bundles; install it with: apt-get install unzip');
        throw err;
      }
    }
    // An ingestion node stages the segment and announces it; the event source mapping receives the message.
    const size = 6 * MiB + 3;
    const body = patternBytes(size, 'rehearsal');
    await admin.put(STAGING_BUCKET, 'incoming/seg-1', body);
    const segments = physical.get('SegmentsQueue') ?? '';
    const announcement = { version: 1, dataspace: 'rehearsal', segmentId: 'seg-1', source: `s3://${STAGING_BUCKET}/incoming/seg-1`, size, sha256: createHash('sha256').update(body).digest('hex') };
    await admin.sqs.send(new SendMessageCommand({ QueueUrl: segments, MessageBody: JSON.stringify(announcement) }));
    const received = (await admin.sqs.send(new ReceiveMessageCommand({ QueueUrl: segments, MaxNumberOfMessages: 10, MessageSystemAttributeNames: ['All'] }))).Messages ?? [];
    expect(received).toHaveLength(1);
    const message = received[0]!;
    const event = { Records: [{ ...sqsRecord({ messageId: message.MessageId ?? '', body: message.Body ?? '', receiptHandle: message.ReceiptHandle }, segments, REGION), eventSourceARN: `arn:aws:sqs:${REGION}:${MOTO_ACCOUNT}:${segments.split('/').pop()}` }] };
    expect(await invoke('upload', event)).toEqual({ batchItemFailures: [] });
    await admin.sqs.send(new DeleteMessageCommand({ QueueUrl: segments, ReceiptHandle: message.ReceiptHandle }));
    const key = formatSegmentKey('', { dataspace: 'rehearsal', segmentId: 'seg-1' });
    const stored = await admin.s3().send(new HeadObjectCommand({ Bucket: DATA_BUCKET, Key: key }));
    expect(stored).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: sseKey });
    await expect(admin.s3().send(new HeadObjectCommand({ Bucket: STAGING_BUCKET, Key: 'incoming/seg-1' }))).rejects.toMatchObject({ name: 'NotFound' });

    const answer = await invoke('fetch', { dataspace: 'rehearsal', segmentId: 'seg-1', destination: `s3://${RESTORE_BUCKET}/restored/seg-1` });
    expect(answer).toMatchObject({ bucket: DATA_BUCKET, key, size, bytesWritten: size, sha256: announcement.sha256 });
    const restored = await (await admin.s3().send(new GetObjectCommand({ Bucket: RESTORE_BUCKET, Key: 'restored/seg-1' }))).Body?.transformToByteArray();
    expect(Buffer.from(restored ?? new Uint8Array()).equals(body)).toBe(true);

    await admin.sqs.send(new SendMessageCommand({ QueueUrl: physical.get('DeletionsQueue'), MessageBody: JSON.stringify({ version: 1, dataspace: 'rehearsal', segmentId: 'seg-1' }) }));
    expect(await invoke('cleanup', { version: '0', id: 'rehearsal', 'detail-type': 'Scheduled Event', source: 'aws.events', account: MOTO_ACCOUNT, time: new Date().toISOString(), region: REGION, resources: [], detail: {} })).toMatchObject({ received: 1, completed: 1, left: 0 });
    await expect(admin.s3().send(new HeadObjectCommand({ Bucket: DATA_BUCKET, Key: key }))).rejects.toMatchObject({ name: 'NotFound' });
    // Each ran in the node its zip's exec wrapper started (functions/lambda-node.sh).
    for (const fn of ['upload', 'fetch', 'cleanup']) expect(nodeFlags.get(fn)).toEqual(expect.arrayContaining(['--single-threaded-gc', '--expose-gc']));
  });

  it('the README\'s aws commands run as written: attach the nodes\' policy, find a key ARN by alias, encrypt the secret, the bucket lifecycle rule', async () => {
    const readme = await readFile('README.md', 'utf8');
    await iam.send(new CreateRoleCommand({ RoleName: 'ingest-nodes', AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] }) }));
    await awsShell(readmeCommand(readme, 'aws iam attach-role-policy'));
    const attached = (await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: 'ingest-nodes' }))).AttachedPolicies ?? [];
    expect(attached.map((p) => p.PolicyArn)).toEqual([physical.get('IngestionNodesPolicy')]);

    await admin.kms.send(new CreateAliasCommand({ AliasName: 'alias/bucket-storage', TargetKeyId: sseKey }));
    expect(await awsShell(readmeCommand(readme, 'aws kms describe-key'))).toBe(sseKey);

    // The secret encrypted once, as the README's Deploy step 2 does it: a kms: value the functions decrypt.
    await awsShell(readmeCommand(readme, 'head -c 48 /dev/urandom'), work);
    const ciphertext = await awsShell(readmeCommand(readme, 'aws kms encrypt'), work);
    const plain = await admin.kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(ciphertext, 'base64') }));
    // 64 characters and no newline: a key the functions accept as it is (the key rules).
    expect(Buffer.from(plain.Plaintext ?? new Uint8Array()).toString()).toMatch(/^[A-Za-z0-9+/]{64}$/);

    await awsShell(readmeCommand(readme, 'aws s3api put-bucket-lifecycle-configuration'));
    const rules = (await admin.s3().send(new GetBucketLifecycleConfigurationCommand({ Bucket: DATA_BUCKET }))).Rules ?? [];
    expect(rules).toEqual([expect.objectContaining({ ID: 'abort-incomplete-multipart-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } })]);
  });
});
