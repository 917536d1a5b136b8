/**
 * stack/iam.js (CommonJS, loaded by osls) grants the registry object by a key it computes itself; it must be
 * the key src/core/objectKeys.ts registryKey() gives for the same S3_STORAGE_OBJECT_KEY_PREFIX.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { deletionMarksPrefix, normalisePrefix, registryKey, storageSizeKey } from '../src/core/objectKeys.ts';

interface Statement {
  readonly Action: readonly string[];
  readonly Resource: readonly unknown[];
}
type StatementsOf = (options: { resolveVariable: (name: string) => Promise<string> }) => Promise<Statement[]>;

const iam = createRequire(import.meta.url)('../stack/iam.js') as { statements: Record<string, StatementsOf> };

/** The key part of the registry statement's resource (after the state bucket's name). */
async function grantedRegistryKey(fn: string, prefix: string): Promise<string> {
  const params: Record<string, string> = { 'param:bucket': 'logs', 'param:allBuckets': '', 'param:objectKeyPrefix': prefix, 'sls:stage': 'dev' };
  const list = await iam.statements[fn]!({ resolveVariable: async (name) => params[name] ?? '' });
  const text = JSON.stringify(list.filter((s) => JSON.stringify(s.Resource).includes('StateBucket')));
  const match = /"\/([^"]*registry\.json)"/.exec(text);
  if (!match?.[1]) throw new Error(`no registry grant for ${fn}`);
  return match[1];
}

/** The keys of the storage size state granted (cleanup only). */
async function grantedSizeKeys(fn: string, prefix: string): Promise<string[]> {
  const params: Record<string, string> = { 'param:bucket': 'logs', 'param:allBuckets': '', 'param:objectKeyPrefix': prefix, 'sls:stage': 'dev' };
  const list = await iam.statements[fn]!({ resolveVariable: async (name) => params[name] ?? '' });
  return [...JSON.stringify(list).matchAll(/"\/([^"]*storage-size\.json)"/g)].map((m) => m[1] ?? '');
}

/** The state-bucket keys granted to `fn` with `action`, after the state bucket's name. */
async function grantedStateKeys(fn: string, prefix: string, action: string): Promise<string[]> {
  const params: Record<string, string> = { 'param:bucket': 'logs', 'param:allBuckets': '', 'param:objectKeyPrefix': prefix, 'sls:stage': 'dev' };
  const list = await iam.statements[fn]!({ resolveVariable: async (name) => params[name] ?? '' });
  const text = JSON.stringify(list.filter((s) => s.Action.includes(action) && JSON.stringify(s.Resource).includes('StateBucket')));
  return [...text.matchAll(/"\/([^"]*)"/g)].map((m) => m[1] ?? '');
}

describe('the deletion marks granted by the stack', () => {
  it.each(['', 'cluster-a', 'a/b/c'])('are deletionMarksPrefix()/* for prefix %j: upload reads and rewrites them, cleanup also removes them, fetch has none', async (prefix) => {
    const marks = `${deletionMarksPrefix(normalisePrefix(prefix))}*`;
    for (const action of ['s3:GetObject', 's3:PutObject']) {
      expect(await grantedStateKeys('upload', prefix, action)).toContain(marks);
      expect(await grantedStateKeys('cleanup', prefix, action)).toContain(marks);
    }
    expect(await grantedStateKeys('cleanup', prefix, 's3:DeleteObject')).toEqual([marks]);
    expect(await grantedStateKeys('upload', prefix, 's3:DeleteObject')).toEqual([]);
    expect((await grantedStateKeys('fetch', prefix, 's3:PutObject')).filter((k) => k.includes('deletions'))).toEqual([]);
  });
});

describe('the registry key granted by the stack', () => {
  it.each(['', 'cluster-a', '/cluster-a/'])('the storage size state: storageSizeKey() for prefix %j, for cleanup only', async (prefix) => {
    expect(await grantedSizeKeys('cleanup', prefix)).toEqual([storageSizeKey(normalisePrefix(prefix))]);
    for (const fn of ['upload', 'fetch']) expect(await grantedSizeKeys(fn, prefix)).toEqual([]);
  });

  it.each(['', 'cluster-a', '/cluster-a/', 'team.x/logs_2026', 'a/b/c'])('equals registryKey() for prefix %j, for every function', async (prefix) => {
    for (const fn of ['upload', 'fetch', 'cleanup']) expect(await grantedRegistryKey(fn, prefix)).toBe(registryKey(normalisePrefix(prefix)));
  });
});
