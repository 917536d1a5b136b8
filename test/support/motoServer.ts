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

/** What a machine without moto_server is told (the tests that need it fail with this, never skip). */
export const MOTO_MISSING = "moto_server is not installed: these tests need it (conditional writes, checksums, KMS). Install it with: pip install 'moto[server]>=5.1,<6' (Python 3.9+), then check that `moto_server --version` runs";

/** Starts moto_server on a free port and waits (≤ 20 s) until it answers. */
export async function startMoto(): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const missing = new Promise<Error>((resolve) => child.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT' ? new Error(MOTO_MISSING) : err)));
  for (let i = 0; i < 100; i++) {
    const failed = await Promise.race([missing, Promise.resolve(undefined)]);
    if (failed !== undefined) throw failed;
    try {
      if ((await fetch(endpoint)).ok) return { endpoint, stop: () => void child.kill('SIGTERM') };
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`moto_server did not answer on ${endpoint} within 20 s`);
}
