/** Shared set-up of the fetch tests: embedded servers, a restore root, runtimes, GET counting. A runtime's registry
 * is the one bucket (no state bucket); tests of several buckets give a restore `{ ...runtime, registry }`. */
import type { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, type Runtime } from '../../src/core/runtime.ts';
import type { BucketRef } from '../../src/core/s3Store.ts';
import { startLocalServers, type LocalServers } from '../../src/local/embeddedServers.ts';

export const CURRENT_SECRET = 'current-secret-for-fetch-tests-0123456789abcdefghijklmnopqrstuvwxyz';
export const PREVIOUS_SECRET = 'previous-secret-for-fetch-tests-0123456789abcdefghijklmnopqrstuvwxy';

export interface Harness {
  readonly servers: LocalServers;
  readonly bucket: BucketRef;
  readonly root: string;
  runtime(env?: Record<string, string>): Promise<Runtime>;
  /** Names of the entries of the restore root (temporary files included). */
  rootEntries(): Promise<string[]>;
  close(): Promise<void>;
}

export async function startHarness(bucketName = 'fetch-test'): Promise<Harness> {
  const servers = await startLocalServers({ port: 0 });
  servers.createBucket(bucketName);
  const root = await mkdtemp(join(tmpdir(), 'bks-restore-'));
  const bucket = { bucket: bucketName, region: servers.region };
  return {
    servers,
    bucket,
    root,
    runtime: (env = {}) =>
      createRuntime({
        ...servers.env(),
        S3_STORAGE_BUCKET: bucketName,
        S3_STORAGE_ENCRYPTION_KEY: CURRENT_SECRET,
        S3_STORAGE_PREVIOUS_ENCRYPTION_KEYS: PREVIOUS_SECRET,
        S3_STORAGE_RESTORE_ROOT: root,
        S3_STORAGE_ACCESSKEY: 'local',
        S3_STORAGE_SECRETKEY: 'local',
        ...env,
      }),
    rootEntries: async () => (await readdir(root)).sort(),
    async close() {
      await servers.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface Request {
  readonly command: string;
  readonly range: string | undefined;
}

/** Records every command `client` sends (GetObject ranges included) from now on. */
export function countRequests(client: S3Client): { readonly requests: Request[]; reset(): void } {
  const requests: Request[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input;
      const range = typeof input === 'object' && input !== null && 'Range' in input && typeof input.Range === 'string' ? input.Range : undefined;
      requests.push({ command: context.commandName ?? '?', range });
      return next(args);
    },
    { step: 'initialize', name: `countRequests-${Math.random()}` },
  );
  return {
    requests,
    reset: () => void requests.splice(0),
  };
}
