// The stack parameters (serverless.yml `params`), read and checked in one place for the other stack/*.js
// files. A bad value or combination stops `osls package` with one line naming the parameter and what to do:
// `check` (serverless.yml custom.parameters) is the one resolver that throws, without a stack trace (osls prints
// a thrown error's stack when it has one); the others read placeholders then, so the error is not repeated for
// each of the dozen places that use the parameters. Packaging fails either way, so no placeholder reaches a
// template.
'use strict';

const { stageValues } = require('./stageParams.js');

class StackParameterError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StackParameterError';
    // osls prints `error.stack || error`: without a stack, the one line `StackParameterError: …`.
    this.stack = '';
  }
}

const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
const KMS_ALIAS_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:alias\//;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const EFS_FILE_SYSTEM_ARN = /^arn:aws[a-z-]*:elasticfilesystem:[a-z0-9-]+:\d{12}:file-system\/fs-[0-9a-f]{8,40}$/;
const EFS_ACCESS_POINT_ARN = /^arn:aws[a-z-]*:elasticfilesystem:[a-z0-9-]+:\d{12}:access-point\/fsap-[0-9a-f]{17}$/;

async function text(resolveVariable, name) {
  const value = await resolveVariable(`param:${name}`);
  return value === undefined || value === null ? '' : String(value).trim();
}

const list = (value) => value.split(',').map((v) => v.trim()).filter(Boolean);

function bucketName(name, value) {
  if (!BUCKET.test(value) || value.includes('..')) {
    throw new StackParameterError(`the stack parameter "${name}" (${JSON.stringify(value)}) is not an S3 bucket name`);
  }
  return value;
}

/** A KMS key ARN, or ''; alias ARNs are refused (a grant on an alias does not authorise the key). */
function kmsKey(name, value) {
  if (value === '') return '';
  if (KMS_ALIAS_ARN.test(value)) {
    throw new StackParameterError(
      `the stack parameter "${name}" is an alias ARN (${value}): IAM grants on an alias do not authorise the key; ` +
        'give the key ARN (aws kms describe-key --key-id <alias ARN> --query KeyMetadata.Arn)',
    );
  }
  if (!KMS_KEY_ARN.test(value)) throw new StackParameterError(`the stack parameter "${name}" (${value}) is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)`);
  return value;
}

function flag(name, value) {
  if (value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw new StackParameterError(`the stack parameter "${name}" is ${JSON.stringify(value)}; expected true or false`);
}

/** A Lambda file system mount path: /mnt/<name> (Lambda's rule). */
function mountPath(name, value, why) {
  if (!/^\/mnt\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(value)) {
    throw new StackParameterError(`the stack parameter "${name}" must be a directory under /mnt/ (Lambda mounts file systems there) ${why}; it is ${JSON.stringify(value)}`);
  }
  return value;
}

/** The object key prefix as the functions normalise it: '' or `a/b/`. */
function keyPrefix(value) {
  const raw = value.replace(/^\/+|\/+$/g, '');
  return raw === '' ? '' : `${raw}/`;
}

/**
 * The staging hand-over: ingestion nodes put segments at s3://<stagingBucket>/<stagingPrefix>… and announce
 * that URL. Undefined without `stagingBucket`.
 */
async function stagingOf(resolveVariable, dataBuckets) {
  const bucket = await text(resolveVariable, 'stagingBucket');
  const create = flag('createStagingBucket', await text(resolveVariable, 'createStagingBucket'));
  const deleteAfterUpload = flag('deleteStagedAfterUpload', await text(resolveVariable, 'deleteStagedAfterUpload'));
  if (bucket === '') {
    if (create || deleteAfterUpload) throw new StackParameterError('the stack parameters "createStagingBucket" and "deleteStagedAfterUpload" need "stagingBucket" (the staging bucket\'s name)');
    return undefined;
  }
  bucketName('stagingBucket', bucket);
  if (dataBuckets.includes(bucket)) throw new StackParameterError(`the stack parameter "stagingBucket" (${bucket}) is also a data bucket; the staging bucket must be a bucket of its own`);
  const expiryDays = Number(await text(resolveVariable, 'stagingExpiryDays'));
  if (!Number.isInteger(expiryDays) || expiryDays < 1) throw new StackParameterError('the stack parameter "stagingExpiryDays" must be a whole number of days, at least 1');
  const region = (await text(resolveVariable, 'stagingBucketRegion')) || String(await resolveVariable('self:provider.region'));
  return { bucket, region, prefix: keyPrefix(await text(resolveVariable, 'stagingPrefix')), create, expiryDays, deleteAfterUpload };
}

/**
 * The shared file system hand-over: upload mounts `efsAccessPointArn` read-only at sourceRoot, fetch mounts
 * `efsRestoreAccessPointArn` (when set) read-write at restoreRoot, both in the VPC of `subnetIds` and
 * `securityGroupIds`. Undefined without `efsAccessPointArn`.
 */
async function efsOf(resolveVariable) {
  const names = ['efsFileSystemArn', 'efsAccessPointArn', 'efsRestoreAccessPointArn', 'subnetIds', 'securityGroupIds'];
  const v = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await text(resolveVariable, n)])));
  if (v.efsAccessPointArn === '' && v.efsRestoreAccessPointArn === '') {
    const stray = ['efsFileSystemArn', 'subnetIds', 'securityGroupIds'].find((n) => v[n] !== '');
    if (stray) throw new StackParameterError(`the stack parameter "${stray}" is set without "efsAccessPointArn": set the EFS parameters together (efsFileSystemArn, efsAccessPointArn, subnetIds, securityGroupIds) or none`);
    return undefined;
  }
  for (const n of ['efsFileSystemArn', 'subnetIds', 'securityGroupIds']) {
    if (v[n] === '') throw new StackParameterError(`the stack parameter "${n}" is required with an EFS access point (set efsFileSystemArn, efsAccessPointArn, subnetIds and securityGroupIds together)`);
  }
  if (!EFS_FILE_SYSTEM_ARN.test(v.efsFileSystemArn)) throw new StackParameterError(`the stack parameter "efsFileSystemArn" (${v.efsFileSystemArn}) is not an EFS file system ARN (arn:aws:elasticfilesystem:<region>:<account>:file-system/fs-…)`);
  for (const n of ['efsAccessPointArn', 'efsRestoreAccessPointArn']) {
    if (v[n] !== '' && !EFS_ACCESS_POINT_ARN.test(v[n])) throw new StackParameterError(`the stack parameter "${n}" (${v[n]}) is not an EFS access point ARN (arn:aws:elasticfilesystem:<region>:<account>:access-point/fsap-…)`);
  }
  const sourceRoot = await text(resolveVariable, 'sourceRoot');
  const restoreRoot = await text(resolveVariable, 'restoreRoot');
  return {
    fileSystemArn: v.efsFileSystemArn,
    subnetIds: list(v.subnetIds),
    securityGroupIds: list(v.securityGroupIds),
    upload: v.efsAccessPointArn === '' ? undefined : { accessPointArn: v.efsAccessPointArn, mountPath: mountPath('sourceRoot', sourceRoot, 'with efsAccessPointArn') },
    fetch: v.efsRestoreAccessPointArn === '' ? undefined : { accessPointArn: v.efsRestoreAccessPointArn, mountPath: mountPath('restoreRoot', restoreRoot, 'with efsRestoreAccessPointArn') },
  };
}

const KMS_SECRET = /^kms:[A-Za-z0-9+/]+={0,2}$/;

/**
 * encryptionKey has no default: the stack stores plain copies only when told so. A plain secret is refused (the
 * template would hold it): the secret goes in encrypted with KMS, `kms:<base64 ciphertext>`.
 */
function encryptionOf(encryptionKey, previousEncryptionKeys) {
  if (encryptionKey === '') {
    throw new StackParameterError('the stack parameter "encryptionKey" has no default: pass --param="encryptionKey=kms:<base64 ciphertext>" (the secret encrypted with KMS), or --param="encryptionKey=off" to store segments unencrypted (or set it in params/<stage>.yml)');
  }
  if (encryptionKey !== 'off' && !KMS_SECRET.test(encryptionKey)) {
    throw new StackParameterError('the stack parameter "encryptionKey" is neither kms:<base64 ciphertext> nor off: a plain secret would sit in the template; encrypt it once (aws kms encrypt --key-id <key> --plaintext fileb://secret --query CiphertextBlob --output text) and pass kms:<that>');
  }
  for (const key of list(previousEncryptionKeys)) {
    if (!KMS_SECRET.test(key)) throw new StackParameterError('the stack parameter "previousEncryptionKeys" holds a value that is not kms:<base64 ciphertext>: encrypt each previous secret with KMS, as for encryptionKey');
  }
  return encryptionKey === 'off' ? 'off' : 'kms';
}

/** The grace period of deletions (S3_STORAGE_DELETION_DELAY_HOURS): a whole number of hours, 0..720. */
function deletionDelayHours(value) {
  const hours = Number(value === '' ? '72' : value);
  if (!/^\d+$/.test(value === '' ? '72' : value) || hours > 720) {
    throw new StackParameterError(`the stack parameter "deletionDelayHours" is ${JSON.stringify(value)}; expected a whole number of hours, 0..720 (72 by default)`);
  }
  return hours;
}

/** Ranged GETs in flight per whole restore of the deployed fetch (S3_STORAGE_RESTORE_CONCURRENCY): 1..64. */
function restoreConcurrency(value) {
  const text = value === '' ? '4' : value;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 64) {
    throw new StackParameterError(`the stack parameter "restoreConcurrency" is ${JSON.stringify(value)}; expected a whole number of ranged GETs, 1..64 (4 by default; 1 reads each segment with one GET)`);
  }
  return Number(text);
}

/** Every parameter the stack/*.js files use, checked. Throws StackParameterError. */
async function parseParams(resolveVariable) {
  const bucket = await text(resolveVariable, 'bucket');
  if (bucket === '') throw new StackParameterError('the stack parameter "bucket" is required: add --param="bucket=<the current bucket\'s name>" (see README, Deploy)');
  bucketName('bucket', bucket);
  const buckets = [...new Set([bucket, ...list(await text(resolveVariable, 'allBuckets'))])].map((b) => bucketName('allBuckets', b));
  const restoreBucket = await text(resolveVariable, 'restoreBucket');
  return {
    stage: String(await resolveVariable('sls:stage')),
    encryption: encryptionOf(await text(resolveVariable, 'encryptionKey'), await text(resolveVariable, 'previousEncryptionKeys')),
    bucket,
    buckets,
    keyPrefix: keyPrefix(await text(resolveVariable, 'objectKeyPrefix')),
    kmsKeyArn: kmsKey('kmsKeyArn', await text(resolveVariable, 'kmsKeyArn')),
    secretKmsKeyArn: kmsKey('secretKmsKeyArn', await text(resolveVariable, 'secretKmsKeyArn')),
    restoreBucket: restoreBucket === '' ? '' : bucketName('restoreBucket', restoreBucket),
    staging: await stagingOf(resolveVariable, buckets),
    efs: await efsOf(resolveVariable),
    deletionDelayHours: deletionDelayHours(await text(resolveVariable, 'deletionDelayHours')),
    restoreConcurrency: restoreConcurrency(await text(resolveVariable, 'restoreConcurrency')),
  };
}

/** What the other resolvers read while `check` reports a bad parameter (packaging then fails). */
const PLACEHOLDER = Object.freeze({ stage: 'invalid', encryption: 'off', bucket: 'invalid-parameters', buckets: ['invalid-parameters'], keyPrefix: '', kmsKeyArn: '', secretKmsKeyArn: '', restoreBucket: '', staging: undefined, efs: undefined, deletionDelayHours: 72, restoreConcurrency: 4 });

/** The checked parameters; placeholders when they are bad (`check` reports that). */
async function readParams(resolveVariable) {
  try {
    return await parseParams(resolveVariable);
  } catch (err) {
    if (err instanceof StackParameterError) return PLACEHOLDER;
    throw err;
  }
}

/** Names given (on the command line, in params/<stage>.yml) that are not parameters: typos, never ignored. */
async function unknownNames(resolveVariable, options) {
  const known = new Set(Object.keys((await resolveVariable('self:custom.defaultParams')) || {}));
  const { file, values } = await stageValues(resolveVariable);
  const given = [
    ...[].concat(options.param || []).map((p) => [String(p).split('=')[0], 'on the command line']),
    ...Object.keys(values).map((name) => [name, `in ${file}`]),
  ];
  const unknown = given.find(([name]) => !known.has(name));
  if (unknown) throw new StackParameterError(`the stack parameter "${unknown[0]}" (${unknown[1]}) is not one of this stack's parameters (a typo?); they are listed in serverless.yml custom.defaultParams`);
}

/**
 * serverless.yml custom.parameters: throws the StackParameterError of a bad parameter, else 'checked'. Says so,
 * once, when the segments will be stored unencrypted.
 */
async function check({ resolveVariable, options }) {
  await unknownNames(resolveVariable, options || {});
  const p = await parseParams(resolveVariable);
  if (p.encryption === 'off') process.stderr.write(`bucket-storage: encryption is off (encryptionKey=off): stage ${p.stage} stores plain copies of the segments\n`);
  return 'checked';
}

module.exports = { readParams, parseParams, check, StackParameterError };
