/**
 * `bucket-storage restore` interrupted by SIGINT or SIGTERM mid-download: it stops, removes its temporary file,
 * writes nothing at the destination and exits 128 + the signal's number with one line on stderr. The download is
 * slowed by a pacing proxy so the signal lands while bytes are being written.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveKey } from '../src/core/keyRing.ts';
import { createRuntime } from '../src/core/runtime.ts';
import { startLocalServers, type LocalServers } from '../src/local/embeddedServers.ts';
import { storeSegment } from './support/storeSegment.ts';

const SECRET = 'restore-signals-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH';
const BUCKET = 'signals';
const SIZE = 24 * 1024 * 1024;
const BYTES_PER_SECOND = 6 * 1024 * 1024;

let servers: LocalServers;
let proxy: Server;
let proxyEndpoint: string;
let root: string;

/** Forwards to the embedded server; object bodies (GET) are sent at BYTES_PER_SECOND. */
function pacingProxy(target: URL): Server {
  return createServer((req, res) => {
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (req.method !== 'GET') return void up.pipe(res);
      up.on('data', (chunk: Buffer) => {
        up.pause();
        res.write(chunk);
        setTimeout(() => up.resume(), (1000 * chunk.length) / BYTES_PER_SECOND);
      });
      up.on('end', () => res.end());
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
}

beforeAll(async () => {
  servers = await startLocalServers({ port: 0 });
  servers.createBucket(BUCKET);
  root = await mkdtemp(join(tmpdir(), 'bks-signals-'));
  const runtime = await createRuntime({ ...servers.env(), S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_ENCRYPTION_KEY: SECRET });
  await storeSegment(runtime.store, { bucket: BUCKET, region: servers.region }, { dataspace: 'sig', segmentId: 'big' }, SIZE, 'big', { key: await deriveKey(SECRET) });
  proxy = pacingProxy(new URL(servers.endpoint));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve));
  await servers?.stop();
  await rm(root, { recursive: true, force: true });
});

async function temporaryFileSize(): Promise<number> {
  const temp = (await readdir(root)).find((n) => n.endsWith('.bks-restoring'));
  return temp === undefined ? 0 : (await stat(join(root, temp)).catch(() => undefined))?.size ?? 0;
}

describe('restore interrupted by a signal', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s mid-download leaves no temporary file and no destination, exits %i with one line', async (signal, status) => {
    const env = { ...process.env, ...servers.env(), S3_STORAGE_ENDPOINT_BASE: proxyEndpoint, S3_STORAGE_BUCKET: BUCKET, S3_STORAGE_ENCRYPTION_KEY: SECRET, S3_STORAGE_RESTORE_ROOT: root };
    const child = spawn(process.execPath, ['bin/bucket-storage.mjs', 'restore', '--dataspace', 'sig', '--segment', 'big', '--to', `file://${join(root, `out-${signal}`)}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null; killedBy: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, killedBy) => resolve({ code, killedBy })));
    // Wait until the restore is writing (its temporary file holds at least a chunk), then interrupt it.
    const deadline = Date.now() + 30_000;
    while ((await temporaryFileSize()) < 1024 * 1024) {
      if (Date.now() > deadline) throw new Error(`the restore never started writing: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill(signal);
    expect(await exit).toEqual({ code: status, killedBy: null });
    expect(stderr.trim().split('\n')).toEqual([`bucket-storage restore: interrupted by ${signal}; nothing was written (the temporary file was removed)`]);
    expect(await readdir(root)).toEqual([]);
  }, 60_000);
});
