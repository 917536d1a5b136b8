// Pieces of serverless.yml computed from the stack parameters: IAM statements per function (least privilege,
// no `*` action, no `*` resource) and the segments queue's visibility timeout. A statement that depends on an
// optional parameter is left out of its list when the parameter is empty. The registry key repeats
// src/core/objectKeys.ts registryKey() (this file is loaded by osls as CommonJS); test/iamRegistryKey.test.ts
// checks that both agree.
'use strict';

const param = (resolveVariable, name) => resolveVariable(`param:${name}`);

async function bucketNames(resolveVariable) {
  const all = String((await param(resolveVariable, 'allBuckets')) || '');
  const current = String((await param(resolveVariable, 'bucket')) || '');
  const names = [...new Set([current, ...all.split(',')].map((b) => b.trim()).filter(Boolean))];
  if (names.length === 0) throw new Error('the stack parameter "bucket" is required (--param="bucket=<name>")');
  return names;
}

const logs = (fn) => async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  return {
    Effect: 'Allow',
    Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'],
    Resource: [{ 'Fn::Join': ['', ['arn:aws:logs:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:log-group:/aws/lambda/bucket-storage-${stage}-${fn}:*`]] }],
  };
};

const objectArns = async (resolveVariable) => (await bucketNames(resolveVariable)).map((b) => `arn:aws:s3:::${b}/*`);
const bucketArns = async (resolveVariable) => (await bucketNames(resolveVariable)).map((b) => `arn:aws:s3:::${b}`);

async function registry(resolveVariable) {
  const raw = String((await param(resolveVariable, 'objectKeyPrefix')) || '').replace(/^\/+|\/+$/g, '');
  const prefix = raw === '' ? '' : `${raw}/`;
  return {
    Effect: 'Allow',
    Action: ['s3:GetObject', 's3:PutObject'],
    Resource: [{ 'Fn::Join': ['', ['arn:aws:s3:::', { Ref: 'StateBucket' }, `/${prefix}_bucket-storage/registry.json`]] }],
  };
}

/** A statement on an optional parameter's resource, or nothing when the parameter is empty. */
async function optional(resolveVariable, name, actions, resource = (v) => v) {
  const value = String((await param(resolveVariable, name)) || '');
  return value === '' ? [] : [{ Effect: 'Allow', Action: actions, Resource: [resource(value)] }];
}

const queueRights = (queue) => ({
  Effect: 'Allow',
  Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'],
  Resource: [{ 'Fn::GetAtt': [queue, 'Arn'] }],
});

module.exports = {
  assumeLambda: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }] },
  // One list of statements per function. `bucket/*` resources are every key inside one named bucket (a key
  // wildcard, not a resource wildcard); KMS, restore-bucket rights appear only when their parameter is set.
  statements: {
    upload: async ({ resolveVariable }) => [
      await logs('upload')({ resolveVariable }),
      { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: await bucketArns(resolveVariable) },
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'], Resource: await objectArns(resolveVariable) },
      await registry(resolveVariable),
      queueRights('SegmentsQueue'),
      ...(await optional(resolveVariable, 'kmsKeyArn', ['kms:GenerateDataKey', 'kms:Decrypt'])),
      ...(await optional(resolveVariable, 'secretKmsKeyArn', ['kms:Decrypt'])),
    ],
    fetch: async ({ resolveVariable }) => [
      await logs('fetch')({ resolveVariable }),
      { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: await bucketArns(resolveVariable) },
      { Effect: 'Allow', Action: ['s3:GetObject'], Resource: await objectArns(resolveVariable) },
      await registry(resolveVariable),
      ...(await optional(resolveVariable, 'restoreBucket', ['s3:PutObject', 's3:AbortMultipartUpload'], (b) => `arn:aws:s3:::${b}/*`)),
      ...(await optional(resolveVariable, 'kmsKeyArn', ['kms:Decrypt'])),
      ...(await optional(resolveVariable, 'secretKmsKeyArn', ['kms:Decrypt'])),
    ],
    cleanup: async ({ resolveVariable }) => [
      await logs('cleanup')({ resolveVariable }),
      { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: await bucketArns(resolveVariable) },
      { Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: await objectArns(resolveVariable) },
      await registry(resolveVariable),
      queueRights('DeletionsQueue'),
      ...(await optional(resolveVariable, 'secretKmsKeyArn', ['kms:Decrypt'])),
    ],
  },
  // AWS guidance: a queue's visibility timeout at least 6× the function timeout of its event source.
  segmentsVisibility: async ({ resolveVariable }) => 6 * Number(await param(resolveVariable, 'uploadTimeout')),
};
