/**
 * The two local S3 servers of the peers bench, each in a process of its own (its CPU is never a client's),
 * bound to 127.0.0.1:
 *   s3rver  3.7.1, objects on disk (node needs --openssl-legacy-provider for its paged listings; clients of it
 *           must not send aws-chunked bodies: requestChecksumCalculation WHEN_REQUIRED);
 *   fauxqs  1.9, the embedded server of `npm start` and the tests, objects in memory; refuses request bodies
 *           over ~11 MiB, so multipart parts stay at 8 MiB there.
 * The bench keeps an admin S3 client to check sizes and delete what each client stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { bundleChild, REPO } from './child.ts';
import { benchPinning } from './cpuPinning.ts';
import { processCpuSeconds } from './processCpu.ts';

export type ServerName = 's3rver' | 'fauxqs';

export interface BenchServer {
  readonly name: ServerName;
  /** http://127.0.0.1:port */
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly accessKey: string;
  readonly secretKey: string;
  /** Largest request body the server takes (fauxqs: 11 MiB), or undefined. */
  readonly maxBody: number | undefined;
  /** Size of a stored object, or undefined when it is absent. */
  sizeOf(key: string): Promise<number | undefined>;
  /** CPU seconds the server process has used so far (undefined where /proc cannot be read). */
  cpuSeconds(): number | undefined;
  /** Deletes every object under `prefix` (the bench's own keys only). */
  clear(prefix: string): Promise<void>;
  stop(): Promise<void>;
}

const REGION = 'us-east-1';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function waitForHttp(endpoint: string, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before it listened`);
    try {
      await fetch(endpoint);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${what} did not listen on ${endpoint} within 20 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    });
}

function adminOf(name: ServerName, endpoint: string, bucket: string, accessKey: string, secretKey: string, maxBody: number | undefined, child: ChildProcess): BenchServer {
  const stop = stopper(child);
  // BENCH_CLIENT_CPUS: the server keeps off the clients' cores.
  if (child.pid !== undefined) benchPinning?.pinToRest(child.pid);
  const client = new S3Client({
    region: REGION,
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    name,
    endpoint,
    region: REGION,
    bucket,
    accessKey,
    secretKey,
    maxBody,
    cpuSeconds: () => processCpuSeconds(child.pid),
    async sizeOf(key) {
      try {
        return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
      } catch {
        return undefined;
      }
    },
    async clear(prefix) {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      for (const o of listed.Contents ?? []) if (o.Key !== undefined) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
    },
    async stop() {
      client.destroy();
      await stop();
    },
  };
}

/** The port a child of the bench prints as one JSON line {"port": N} once it listens (fauxqs, the link proxy). */
export function listeningPort(child: ChildProcess, what: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const line = /\{"port":(\d+)\}/.exec(out);
      if (line) resolve(Number(line[1]));
    });
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before it listened`)));
  });
}

/** s3rver on disk under `dir`, with `bucket` configured at start. */
export async function startS3rver(dir: string, bucket: string): Promise<BenchServer> {
  const port = await freePort();
  const data = join(dir, 's3rver-data');
  await mkdir(data, { recursive: true });
  const bin = join(REPO, 'node_modules/s3rver/bin/s3rver.js');
  const child = spawn(process.execPath, ['--openssl-legacy-provider', bin, '-d', data, '-a', '127.0.0.1', '-p', String(port), '--silent', '--configure-bucket', bucket], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitForHttp(endpoint, child, 's3rver');
  return adminOf('s3rver', endpoint, bucket, 'S3RVER', 'S3RVER', undefined, child);
}

/** fauxqs in a child process (bench/support/fauxqsServer.ts, bundled), with `bucket` created. */
export async function startFauxqsProcess(dir: string, bucket: string): Promise<BenchServer> {
  const script = await bundleChild(join(REPO, 'bench/support/fauxqsServer.ts'), dir);
  const child = spawn(process.execPath, [script, bucket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await listeningPort(child, 'fauxqs');
  return adminOf('fauxqs', `http://127.0.0.1:${port}`, bucket, 'local', 'local', 11 * 1024 * 1024, child);
}

/** BENCH_LINK_MIBPS: MiB/s each client connection may carry each way (bench/support/linkProxy.ts), or undefined. */
export function linkMiBps(value = process.env.BENCH_LINK_MIBPS): number | undefined {
  if (value === undefined || value === '') return undefined;
  const rate = Number(value);
  if (!(rate > 0) || !Number.isFinite(rate)) throw new Error(`BENCH_LINK_MIBPS=${value}: give the MiB/s one connection may carry, a number above 0`);
  return rate;
}

/**
 * The server behind a proxy that bounds each connection to `rate` MiB/s each way: the clients see the proxy's
 * endpoint, while the bench's admin client, sizeOf and clear, and the server's CPU figure stay the server's own.
 */
async function behindLink(server: BenchServer, dir: string, rate: number): Promise<BenchServer> {
  const script = await bundleChild(join(REPO, 'bench/support/linkProxy.ts'), dir);
  const target = new URL(server.endpoint).port;
  const child = spawn(process.execPath, [script, target, String(rate)], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (child.pid !== undefined) benchPinning?.pinToRest(child.pid);
  const port = await listeningPort(child, 'the link proxy');
  const stopProxy = stopper(child);
  return {
    ...server,
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      await stopProxy();
      await server.stop();
    },
  };
}

export async function startServer(name: ServerName, dir: string, bucket: string): Promise<BenchServer> {
  const server = name === 's3rver' ? await startS3rver(dir, bucket) : await startFauxqsProcess(dir, bucket);
  const rate = linkMiBps();
  return rate === undefined ? server : behindLink(server, dir, rate);
}
