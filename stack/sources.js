// How segments reach the deployed functions, computed from the parameters (stack/params.js). Two hand-overs:
//   staging bucket  ingestion nodes put the raw segment at s3://<stagingBucket>/<stagingPrefix>… and announce that
//                   URL; upload reads it in the staging bucket's own region and, with deleteStagedAfterUpload,
//                   deletes it once the stored copy is verified. The stack can create the bucket, with a
//                   lifecycle rule that expires what is left after stagingExpiryDays.
//   shared EFS      upload mounts an access point read-only at sourceRoot (file:// sources), fetch another one
//                   read-write at restoreRoot (file:// restores), in the given subnets and security groups.
// Without their parameters, none of these pieces appear in the template.
'use strict';

const { readParams } = require('./params.js');

const params = (fn) => async ({ resolveVariable }) => fn(await readParams(resolveVariable));

/** The function's `vpc` and `fileSystemConfig`, or null (serverless.yml falls back to nothing). */
const vpcOf = (mount) => (p) => (p.efs?.[mount] ? { subnetIds: p.efs.subnetIds, securityGroupIds: p.efs.securityGroupIds } : null);
const fileSystemOf = (mount) => (p) => (p.efs?.[mount] ? { arn: p.efs[mount].accessPointArn, localMountPath: p.efs[mount].mountPath } : null);

function stagingBucketResource(s) {
  return {
    Type: 'AWS::S3::Bucket',
    DeletionPolicy: 'Retain',
    Properties: {
      BucketName: s.bucket,
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LifecycleConfiguration: {
        Rules: [
          // Staged copies that were never deleted (no deleteStagedAfterUpload, a failed delete, a segment never
          // announced) expire; incomplete multipart uploads of the nodes are aborted.
          { Id: 'expire-staged-segments', Status: 'Enabled', ...(s.prefix ? { Prefix: s.prefix } : {}), ExpirationInDays: s.expiryDays },
          { Id: 'abort-incomplete-multipart-uploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
        ],
      },
    },
  };
}

module.exports = {
  env: {
    stagingBucket: params((p) => p.staging?.bucket ?? ''),
    stagingRegion: params((p) => p.staging?.region ?? ''),
    deleteStagedAfterUpload: params((p) => (p.staging?.deleteAfterUpload ? 'true' : '')),
  },
  vpc: { upload: params(vpcOf('upload')), fetch: params(vpcOf('fetch')) },
  fileSystem: { upload: params(fileSystemOf('upload')), fetch: params(fileSystemOf('fetch')) },
  /** Resources that exist only with their parameters. */
  resources: params((p) => (p.staging?.create ? { StagingBucket: stagingBucketResource(p.staging) } : {})),
  outputs: params((p) => (p.staging ? { StagingBucketName: { Value: p.staging.create ? { Ref: 'StagingBucket' } : p.staging.bucket } } : {})),
};
