import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { linkMiBps, listeningPort } from '../bench/support/servers.ts';

const PROXY = fileURLToPath(new URL('../bench/support/linkProxy.ts', import.meta.url));
const MiB = 2 ** 20;

/** A server that answers GET with `body` and PUT with the SHA-256 of what it received. */
async function origin(body: Buffer): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== 'PUT') return void res.end(body);
    const hash = createHash('sha256');
    req.on('data', (c: Buffer) => hash.update(c)).on('end', () => res.end(hash.digest('hex')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

async function proxy(targetPort: number, mibps: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', PROXY, String(targetPort), String(mibps)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, port: await listeningPort(child, 'linkProxy') };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the link proxy of the peers bench (BENCH_LINK_MIBPS)', () => {
  const stops: (() => void)[] = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
  });

  it('reads the rate, and refuses one that is not a number above 0, naming the variable', () => {
    expect(linkMiBps(undefined)).toBeUndefined();
    expect(linkMiBps('')).toBeUndefined();
    expect(linkMiBps('64')).toBe(64);
    expect(linkMiBps('0.5')).toBe(0.5);
    for (const bad of ['0', '-8', 'fast', 'Infinity']) expect(() => linkMiBps(bad)).toThrow(/^BENCH_LINK_MIBPS=.*a number above 0/);
  });

  it('passes every byte both ways unchanged, over one kept-alive connection as over several', async () => {
    const body = randomBytes(3 * MiB + 17);
    const { server, port } = await origin(body);
    stops.push(() => server.close());
    const { child, port: proxyPort } = await proxy(port, 1024);
    stops.push(() => child.kill());
    const url = `http://127.0.0.1:${proxyPort}/`;
    const gets = await Promise.all([1, 2, 3].map(async () => Buffer.from(await (await fetch(url)).arrayBuffer())));
    for (const got of gets) expect(sha(got)).toBe(sha(body));
    const put = await fetch(url, { method: 'PUT', body });
    expect(await put.text()).toBe(sha(body));
  });

  // A lower bound only: a busy machine can make the transfer slower, never faster than the link lets it.
  it('holds a connection to its rate: 2 MiB at 8 MiB/s take at least a quarter second, less a margin', async () => {
    const body = randomBytes(2 * MiB);
    const { server, port } = await origin(body);
    stops.push(() => server.close());
    const { child, port: proxyPort } = await proxy(port, 8);
    stops.push(() => child.kill());
    const started = performance.now();
    const got = Buffer.from(await (await fetch(`http://127.0.0.1:${proxyPort}/`)).arrayBuffer());
    expect(got.length).toBe(body.length);
    expect(performance.now() - started).toBeGreaterThan(200);
  });
});
