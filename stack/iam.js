// IAM of the stack, computed from the parameters (stack/params.js): one list of statements per function (least
// privilege, no `*` action, no `*` resource), the managed policy of the ingestion nodes' role, and the segments
// queue's visibility timeout. A statement that depends on an optional parameter is left out when it is empty.
// test/permissions.test.ts proves these rights against every request the functions make (recorded on
// moto_server, evaluated with an IAM policy simulator); test/stack.test.ts reads the packaged template.
//
// AWS rules these statements follow:
// - S3 answers a GET/HEAD of a missing key with 403 instead of 404 unless the caller has s3:ListBucket on the
//   bucket: every bucket the functions look up keys in (the registry's state bucket, the data buckets, the
//   staging bucket) is listable by them.
// - ListMultipartUploads needs s3:ListBucketMultipartUploads on the bucket (upload aborts a crashed attempt).
// - An SSE-KMS write needs kms:GenerateDataKey, and a multipart one kms:Decrypt as well, on the key itself (a
//   grant on an alias ARN authorises nothing: params.js refuses alias ARNs).
// The registry key, the size logger's state key and the deletion marks' prefix repeat src/core/objectKeys.ts
// registryKey(), storageSizeKey() and deletionMarksPrefix() (this file is CommonJS, loaded by osls);
// test/iamRegistryKey.test.ts checks that they agree.
'use strict';

const { readParams } = require('./params.js');

const allow = (actions, resources, condition) => ({ Effect: 'Allow', Action: actions, Resource: resources, ...(condition ? { Condition: condition } : {}) });
const join = (...parts) => ({ 'Fn::Join': ['', parts] });
const objects = (buckets) => buckets.map((b) => `arn:aws:s3:::${b}/*`);
const bucketArns = (buckets) => buckets.map((b) => `arn:aws:s3:::${b}`);

function logs(p, fn) {
  return allow(['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], [join('arn:aws:logs:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:log-group:/aws/lambda/bucket-storage-${p.stage}-${fn}:*`)]);
}

/** The registry: read and conditionally written by every cold start; ListBucket so a missing registry is a 404. */
function registry(p) {
  return [
    allow(['s3:ListBucket'], [join('arn:aws:s3:::', { Ref: 'StateBucket' })]),
    allow(['s3:GetObject', 's3:PutObject'], [join('arn:aws:s3:::', { Ref: 'StateBucket' }, `/${p.keyPrefix}_bucket-storage/registry.json`)]),
  ];
}

/**
 * Cleanup's bucket storage size logger (src/cleanup/storageSizeLogger.ts): lists the data buckets (segment
 * objects and bytes) and keeps its state beside the registry. It never deletes what it lists.
 */
function sizeLogger(p) {
  return [
    allow(['s3:ListBucket'], bucketArns(p.buckets)),
    allow(['s3:GetObject', 's3:PutObject'], [join('arn:aws:s3:::', { Ref: 'StateBucket' }, `/${p.keyPrefix}_bucket-storage/storage-size.json`)]),
  ];
}

/**
 * The deletion marks (state bucket, under the prefix): upload reads and rewrites them (an announced segment
 * cancels its pending deletion); cleanup also creates, claims and removes them. Listing them is the registry's
 * s3:ListBucket on the state bucket (which also names other prefixes' registries at cold start).
 */
function deletionMarks(p, actions) {
  return allow(actions, [join('arn:aws:s3:::', { Ref: 'StateBucket' }, `/${p.keyPrefix}_bucket-storage/deletions/*`)]);
}

/** kms: secrets (S3_STORAGE_ENCRYPTION_KEY and previous keys) are decrypted at cold start. */
const secretKey = (p) => (p.secretKmsKeyArn ? [allow(['kms:Decrypt'], [p.secretKmsKeyArn])] : []);

/** Upload's event source mapping polls with the function's role: receive, delete, read the queue's attributes. */
const pollQueue = (queue) => allow(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'], [{ 'Fn::GetAtt': [queue, 'Arn'] }]);
/** Cleanup drains its queue itself: receive (with a visibility timeout) and delete in batches. */
const drainQueue = (queue) => allow(['sqs:ReceiveMessage', 'sqs:DeleteMessage'], [{ 'Fn::GetAtt': [queue, 'Arn'] }]);

/** Mounting an EFS access point: ClientMount (read-only) or ClientMount + ClientWrite, on that access point only. */
function efsMount(p, mount, write) {
  return allow(write ? ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'] : ['elasticfilesystem:ClientMount'], [p.efs.fileSystemArn], {
    StringEquals: { 'elasticfilesystem:AccessPointArn': mount.accessPointArn },
  });
}

function staging(p) {
  if (!p.staging) return [];
  const s = p.staging;
  return [
    // ListBucket: a missing staged source is "does not exist" (404), not "access denied" (403).
    allow(['s3:ListBucket'], [`arn:aws:s3:::${s.bucket}`]),
    allow(s.deleteAfterUpload ? ['s3:GetObject', 's3:DeleteObject'] : ['s3:GetObject'], [`arn:aws:s3:::${s.bucket}/${s.prefix}*`]),
  ];
}

const statements = {
  upload: async ({ resolveVariable }) => {
    const p = await readParams(resolveVariable);
    return [
      logs(p, 'upload'),
      ...registry(p),
      // "Already stored?" HEADs the key in every registered bucket.
      allow(['s3:ListBucket'], bucketArns(p.buckets)),
      allow(['s3:GetObject'], objects(p.buckets)),
      // Writes go to the current bucket only; a crashed attempt's parts are listed and aborted first.
      allow(['s3:ListBucketMultipartUploads'], bucketArns([p.bucket])),
      allow(['s3:PutObject', 's3:AbortMultipartUpload'], objects([p.bucket])),
      deletionMarks(p, ['s3:GetObject', 's3:PutObject']),
      ...staging(p),
      pollQueue('SegmentsQueue'),
      ...(p.kmsKeyArn ? [allow(['kms:GenerateDataKey', 'kms:Decrypt'], [p.kmsKeyArn])] : []),
      ...secretKey(p),
      ...(p.efs?.upload ? [efsMount(p, p.efs.upload, false)] : []),
    ];
  },
  fetch: async ({ resolveVariable }) => {
    const p = await readParams(resolveVariable);
    return [
      logs(p, 'fetch'),
      ...registry(p),
      allow(['s3:ListBucket'], bucketArns(p.buckets)),
      allow(['s3:GetObject'], objects(p.buckets)),
      ...(p.restoreBucket ? [allow(['s3:PutObject', 's3:AbortMultipartUpload'], objects([p.restoreBucket]))] : []),
      // A killed restore's multipart upload of the same s3:// destination is listed and aborted by the next one.
      ...(p.restoreBucket ? [allow(['s3:ListBucketMultipartUploads'], bucketArns([p.restoreBucket]))] : []),
      // Reading SSE-KMS objects; writing an s3:// restore under the same key needs GenerateDataKey too.
      ...(p.kmsKeyArn ? [allow(p.restoreBucket ? ['kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'], [p.kmsKeyArn])] : []),
      ...secretKey(p),
      ...(p.efs?.fetch ? [efsMount(p, p.efs.fetch, true)] : []),
    ];
  },
  cleanup: async ({ resolveVariable }) => {
    const p = await readParams(resolveVariable);
    return [
      logs(p, 'cleanup'),
      ...registry(p),
      // DeleteObjects: s3:DeleteObject per key; cleanup never lists a data bucket to decide what to delete.
      allow(['s3:DeleteObject'], objects(p.buckets)),
      ...sizeLogger(p),
      deletionMarks(p, ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']),
      drainQueue('DeletionsQueue'),
      ...secretKey(p),
    ];
  },
};

/** What the ingestion nodes' role needs: announce, stage, invoke restores. */
async function ingestionNodes({ resolveVariable }) {
  const p = await readParams(resolveVariable);
  return [
    allow(['sqs:SendMessage'], [{ 'Fn::GetAtt': ['SegmentsQueue', 'Arn'] }, { 'Fn::GetAtt': ['DeletionsQueue', 'Arn'] }]),
    ...(p.staging ? [allow(['s3:PutObject', 's3:AbortMultipartUpload'], [`arn:aws:s3:::${p.staging.bucket}/${p.staging.prefix}*`])] : []),
    allow(['lambda:InvokeFunction'], [{ 'Fn::GetAtt': ['FetchLambdaFunction', 'Arn'] }]),
  ];
}

/** A function in a VPC (to reach EFS) needs the ENI rights of AWS's managed policy; nothing otherwise. */
const VPC_ACCESS = 'arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole';
const managedPolicies = {
  upload: async ({ resolveVariable }) => ((await readParams(resolveVariable)).efs?.upload ? [VPC_ACCESS] : []),
  fetch: async ({ resolveVariable }) => ((await readParams(resolveVariable)).efs?.fetch ? [VPC_ACCESS] : []),
};

module.exports = {
  assumeLambda: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }] },
  statements,
  ingestionNodes,
  managedPolicies,
  VPC_ACCESS,
  // AWS guidance: a queue's visibility timeout at least 6× the function timeout of its event source.
  segmentsVisibility: async ({ resolveVariable }) => 6 * Number(await resolveVariable('param:uploadTimeout')),
};
