/**
 * The permission harness, template side: packages the stack offline (osls, as `npm run package` does),
 * resolves the packaged template's intrinsic functions (Ref, Fn::GetAtt, Fn::Join, Fn::Sub) to concrete ARNs for a
 * test's account, region and resource names, collects what each principal may do (a function's role: its inline
 * policies; 'ingest': the ingestion nodes' managed policy), adds the requests AWS itself makes with a
 * function's role (the SQS event source mapping, the log stream, an EFS mount), and evaluates requests with
 * @cloud-copilot/iam-simulate, AWS's evaluation logic as a library.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Account, IamCheck, RecordedRequest } from './iamRequests.ts';
import { iamChecks } from './iamRequests.ts';

export interface Resource {
  readonly Type: string;
  readonly Properties: Record<string, unknown>;
  readonly Condition?: string;
  readonly DependsOn?: unknown;
}
export interface Template {
  readonly Resources: Record<string, Resource>;
  readonly Outputs: Record<string, { Value: unknown }>;
  readonly Conditions?: Record<string, unknown>;
}
export interface PolicyDocument {
  readonly Version: string;
  readonly Statement: readonly Record<string, unknown>[];
}

/**
 * `npx osls package` with `params` (encryptionKey=off unless given) into a new directory; resolves to the directory. Dummy credentials: packaging
 * needs none. Asynchronous (the test process stays responsive), but run one at a time: concurrent osls runs in
 * the same service directory fail.
 */
export async function packageStackTo(params: Readonly<Record<string, string>>, extraArgs: readonly string[] = []): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'bks-stack-'));
  // encryptionKey has no default; tests of other parts package with encryption off unless they say otherwise.
  const all = { encryptionKey: 'off', ...params };
  const args = ['osls', 'package', '--package', dir, ...extraArgs, ...Object.entries(all).map(([k, v]) => `--param=${k}=${v}`)];
  await promisify(execFile)('npx', args, { env: { ...process.env, AWS_ACCESS_KEY_ID: 'none', AWS_SECRET_ACCESS_KEY: 'none', SLS_TELEMETRY_DISABLED: '1' }, timeout: 180_000 });
  return dir;
}

/** The packaged (update-stack) template of a directory made by packageStackTo. */
export function readTemplate(dir: string): Template {
  // A parsing boundary: the template is JSON that osls wrote.
  return JSON.parse(readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
}

/** Where the template is "deployed": account, region and the physical names of resources it does not name. */
export interface Deployment extends Account {
  /** Logical id → physical name (bucket name, queue name) for resources whose names CloudFormation would choose. */
  readonly names: Readonly<Record<string, string>>;
}

/** Resolves Ref / Fn::GetAtt / Fn::Join / Fn::Sub in `value` for `deployment`. Throws naming what it cannot resolve. */
export function resolveIntrinsics(template: Template, deployment: Deployment, value: unknown): unknown {
  const { account, region } = deployment;
  const pseudo: Record<string, string> = { 'AWS::Region': region, 'AWS::AccountId': account, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com' };
  const resource = (id: string): Resource => {
    const r = template.Resources[id];
    if (r === undefined) throw new Error(`template: no resource ${id}`);
    return r;
  };
  const name = (id: string): string => {
    const r = resource(id);
    const own = r.Properties?.FunctionName ?? r.Properties?.BucketName ?? r.Properties?.QueueName;
    if (typeof own === 'string') return own;
    const given = deployment.names[id];
    if (given === undefined) throw new Error(`template: the test gives no physical name for ${id} (${r.Type})`);
    return given;
  };
  const ref = (id: string): string => {
    if (pseudo[id] !== undefined) return pseudo[id];
    const r = resource(id);
    switch (r.Type) {
      case 'AWS::SQS::Queue':
        return `https://sqs.${region}.amazonaws.com/${account}/${name(id)}`;
      case 'AWS::IAM::ManagedPolicy':
        return `arn:aws:iam::${account}:policy/${id}`;
      default:
        return name(id);
    }
  };
  const arn = (id: string): string => {
    const r = resource(id);
    switch (r.Type) {
      case 'AWS::SQS::Queue':
        return `arn:aws:sqs:${region}:${account}:${name(id)}`;
      case 'AWS::S3::Bucket':
        return `arn:aws:s3:::${name(id)}`;
      case 'AWS::Lambda::Function':
        return `arn:aws:lambda:${region}:${account}:function:${name(id)}`;
      case 'AWS::IAM::Role':
        return `arn:aws:iam::${account}:role/${id}`;
      default:
        throw new Error(`template: Fn::GetAtt ${id}.Arn of a ${r.Type} is not known to the harness`);
    }
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    const entries = Object.entries(v);
    const [only] = entries;
    if (entries.length === 1 && only !== undefined) {
      const [fn, arg] = only;
      if (fn === 'Ref' && typeof arg === 'string') return ref(arg);
      if (fn === 'Fn::GetAtt' && Array.isArray(arg) && arg[1] === 'Arn' && typeof arg[0] === 'string') return arn(arg[0]);
      if (fn === 'Fn::Join' && Array.isArray(arg) && typeof arg[0] === 'string' && Array.isArray(arg[1])) return arg[1].map(walk).join(arg[0]);
      if (fn === 'Fn::Sub' && typeof arg === 'string') {
        return arg.replace(/\$\{([^}]+)\}/g, (_m, expr: string) => (expr.endsWith('.Arn') ? arn(expr.slice(0, -4)) : ref(expr)));
      }
      if (fn.startsWith('Fn::')) throw new Error(`template: ${fn} is not resolved by the harness`);
    }
    return Object.fromEntries(entries.map(([k, x]) => [k, walk(x)]));
  };
  return walk(value);
}

/** The role of each function: 'upload' → UploadRole, from the functions' Role property. */
function functionRoles(template: Template): Map<string, { functionId: string; roleId: string }> {
  const roles = new Map<string, { functionId: string; roleId: string }>();
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const role = r.Properties.Role;
    const getAtt: unknown = typeof role === 'object' && role !== null ? Reflect.get(role, 'Fn::GetAtt') : undefined;
    const roleId: unknown = Array.isArray(getAtt) ? getAtt[0] : undefined;
    if (typeof roleId !== 'string') throw new Error(`template: ${id} has no Fn::GetAtt role`);
    roles.set(id.replace(/LambdaFunction$/, '').toLowerCase(), { functionId: id, roleId });
  }
  return roles;
}

function isPolicyDocument(v: unknown): v is PolicyDocument {
  return typeof v === 'object' && v !== null && 'Statement' in v && Array.isArray(v.Statement);
}

/** A deployment's principals and their policies, resolved. */
export interface Principals {
  readonly deployment: Deployment;
  readonly template: Template;
  /** 'upload' | 'fetch' | 'cleanup' | 'ingest' → identity policies. */
  readonly policies: ReadonlyMap<string, readonly PolicyDocument[]>;
  /** Requests AWS makes with a function's role, per principal. */
  readonly platform: ReadonlyMap<string, readonly IamCheck[]>;
}

export function principalsOf(template: Template, deployment: Deployment): Principals {
  const policies = new Map<string, PolicyDocument[]>();
  const platform = new Map<string, IamCheck[]>();
  const roles = functionRoles(template);
  for (const [fn, { functionId, roleId }] of roles) {
    const role = template.Resources[roleId];
    const inline = role?.Properties.Policies;
    if (!Array.isArray(inline)) throw new Error(`template: ${roleId} has no inline policies`);
    policies.set(
      fn,
      inline.map((p: unknown) => {
        const doc = resolveIntrinsics(template, deployment, typeof p === 'object' && p !== null ? Reflect.get(p, 'PolicyDocument') : undefined);
        if (!isPolicyDocument(doc)) throw new Error(`template: a policy of ${roleId} has no statements`);
        return doc;
      }),
    );
    platform.set(fn, platformChecks(template, deployment, fn, functionId));
  }
  const nodes = template.Resources.IngestionNodesPolicy;
  if (nodes !== undefined) {
    const doc = resolveIntrinsics(template, deployment, nodes.Properties.PolicyDocument);
    if (!isPolicyDocument(doc)) throw new Error('template: IngestionNodesPolicy has no statements');
    policies.set('ingest', [doc]);
    // What a node does that the tests cannot run here: invoke the fetch function.
    platform.set('ingest', [{ action: 'lambda:InvokeFunction', resource: String(resolveIntrinsics(template, deployment, { 'Fn::GetAtt': ['FetchLambdaFunction', 'Arn'] })), context: {} }]);
  }
  return { deployment, template, policies, platform };
}

/**
 * What AWS does with a function's role: write its logs; poll its event source (the SQS event source mapping
 * receives, deletes and reads queue attributes); mount its file system (ClientMount, and ClientWrite for a
 * read-write mount: fetch writes restores, upload only reads sources).
 */
function platformChecks(template: Template, deployment: Deployment, fn: string, functionId: string): IamCheck[] {
  const { account, region } = deployment;
  const props = template.Resources[functionId]?.Properties ?? {};
  const name = String(props.FunctionName);
  const checks: IamCheck[] = [
    { action: 'logs:CreateLogStream', resource: `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${name}:*`, context: {} },
    { action: 'logs:PutLogEvents', resource: `arn:aws:logs:${region}:${account}:log-group:/aws/lambda/${name}:log-stream:2026/01/01/[$LATEST]0`, context: {} },
  ];
  for (const r of Object.values(template.Resources)) {
    if (r.Type !== 'AWS::Lambda::EventSourceMapping') continue;
    const target = r.Properties.FunctionName;
    const getAtt: unknown = typeof target === 'object' && target !== null ? Reflect.get(target, 'Fn::GetAtt') : undefined;
    if (!Array.isArray(getAtt) || getAtt[0] !== functionId) continue;
    const queue = String(resolveIntrinsics(template, deployment, r.Properties.EventSourceArn));
    for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) checks.push({ action, resource: queue, context: {} });
  }
  const mounts = props.FileSystemConfigs;
  if (Array.isArray(mounts)) {
    for (const m of mounts) {
      const accessPoint = String(Reflect.get(m, 'Arn'));
      const fileSystem = efsFileSystemOf(template, deployment, accessPoint);
      const actions = fn === 'fetch' ? ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'] : ['elasticfilesystem:ClientMount'];
      for (const action of actions) checks.push({ action, resource: fileSystem, context: { 'elasticfilesystem:AccessPointArn': accessPoint } });
    }
  }
  return checks;
}

/** The file system of an access point: the deployment names it (`efs:<access point ARN>`). */
function efsFileSystemOf(_template: Template, deployment: Deployment, accessPoint: string): string {
  const fs = deployment.names[`efs:${accessPoint}`];
  if (fs === undefined) throw new Error(`template: the test gives no file system for the access point ${accessPoint}`);
  return fs;
}

/** A key policy as KMS creates it by default: the account's IAM policies decide. */
const defaultKeyPolicy = (account: string) => ({ Version: '2012-10-17', Statement: [{ Sid: 'Enable IAM policies', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }] });

export interface Denial {
  readonly principal: string;
  readonly action: string;
  readonly resource: string;
  /** The request(s) that needed it, e.g. "HeadObject s3://b/k (404)". */
  readonly requests: readonly string[];
}

export interface Evaluation {
  /** Per principal: requests recorded, distinct IAM checks evaluated, denied. */
  readonly perPrincipal: Readonly<Record<string, { requests: number; checks: number; denied: number }>>;
  readonly denied: readonly Denial[];
  /** Per principal: the actions some request needed. */
  readonly exercised: ReadonlyMap<string, ReadonlySet<string>>;
}

function describeRequest(r: RecordedRequest): string {
  const where = r.bucket !== undefined ? `s3://${r.bucket}/${r.key ?? ''}` : (r.queueUrl ?? r.kmsKey ?? '');
  return `${r.operation} ${where}${r.status !== undefined && r.status >= 300 ? ` (${r.status})` : ''}`;
}

/**
 * Evaluates every recorded request made under `deploymentName`, and the requests AWS makes with each
 * principal's role, against the principals' policies. A principal without policies in the template is denied
 * everything.
 */
export async function evaluate(principals: Principals, deploymentName: string, requests: readonly RecordedRequest[]): Promise<Evaluation> {
  const { account } = principals.deployment;
  const needed = new Map<string, { principal: string; check: IamCheck; requests: Set<string> }>();
  const counts: Record<string, { requests: number; checks: number; denied: number }> = {};
  const need = (principal: string, check: IamCheck, why: string) => {
    const id = `${principal}\n${check.action}\n${check.resource}\n${JSON.stringify(check.context)}`;
    const entry = needed.get(id) ?? { principal, check, requests: new Set<string>() };
    entry.requests.add(why);
    needed.set(id, entry);
  };
  for (const r of requests) {
    if (r.deployment !== deploymentName) continue;
    (counts[r.principal] ??= { requests: 0, checks: 0, denied: 0 }).requests++;
    for (const check of iamChecks(r, principals.deployment)) need(r.principal, check, describeRequest(r));
  }
  for (const [principal, checks] of principals.platform) {
    counts[principal] ??= { requests: 0, checks: 0, denied: 0 };
    for (const check of checks) need(principal, check, `(AWS on behalf of ${principal}) ${check.action}`);
  }
  const denied: Denial[] = [];
  const exercised = new Map<string, Set<string>>();
  for (const { principal, check, requests: why } of needed.values()) {
    if (!exercised.has(principal)) exercised.set(principal, new Set());
    exercised.get(principal)?.add(check.action);
    const counter = (counts[principal] ??= { requests: 0, checks: 0, denied: 0 });
    counter.checks++;
    const policies = principals.policies.get(principal) ?? [];
    const result = await runSimulation(
      {
        identityPolicies: policies.map((policy, i) => ({ name: `${principal}-${i}`, policy })),
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        ...(check.action.startsWith('kms:') ? { resourcePolicy: defaultKeyPolicy(account) } : {}),
        request: { action: check.action, principal: `arn:aws:iam::${account}:role/${principal}`, resource: { accountId: account, resource: check.resource }, contextVariables: { ...check.context } },
      },
      {},
    );
    if (result.resultType === 'error') throw new Error(`permission harness: the simulator refused ${check.action} on ${check.resource}: ${JSON.stringify(result.errors)}`);
    if (result.overallResult !== 'Allowed') {
      counter.denied++;
      denied.push({ principal, action: check.action, resource: check.resource, requests: [...why] });
    }
  }
  return { perPrincipal: counts, denied, exercised };
}

/** The actions `principal`'s policies grant. */
export function grantedActions(principals: Principals, principal: string): Set<string> {
  return new Set((principals.policies.get(principal) ?? []).flatMap((doc) => doc.Statement.flatMap((s) => ([] as unknown[]).concat(s.Action).map(String))));
}

/** One line per denial: "upload: s3:ListBucketMultipartUploads on arn:aws:s3:::b (ListMultipartUploads s3://b/k)". */
export function describeDenials(denied: readonly Denial[]): string {
  return denied.map((d) => `${d.principal}: ${d.action} on ${d.resource} (${d.requests.slice(0, 3).join('; ')})`).join('\n');
}

/** A copy of `principals` with `action` removed from every statement of `principal` (to show the harness notices). */
export function withoutAction(principals: Principals, principal: string, action: string): Principals {
  const policies = new Map(principals.policies);
  policies.set(
    principal,
    (policies.get(principal) ?? []).map((doc) => ({
      ...doc,
      Statement: doc.Statement.map((s) => ({ ...s, Action: ([] as unknown[]).concat(s.Action).filter((a) => a !== action) })).filter((s) => s.Action.length > 0),
    })),
  );
  return { ...principals, policies };
}
