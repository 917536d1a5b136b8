/**
 * moto_server (Python moto, on these machines) as a child process on 127.0.0.1: an S3/SQS peer that enforces
 * If-Match/If-None-Match and lists multipart uploads, which the embedded fauxqs does not.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

export interface MotoServer {
  readonly endpoint: string;
  stop(): void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts moto_server on a free port and waits (≤ 20 s) until it answers. */
export async function startMoto(): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(endpoint)).ok) return { endpoint, stop: () => void child.kill('SIGTERM') };
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`moto_server did not answer on ${endpoint} within 20 s`);
}
