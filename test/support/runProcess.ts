/**
 * Runs a child process without blocking the test worker: a synchronous spawn of a long command (a build, a
 * packaging, the demo) stops the worker's event loop, and vitest's RPC then times out on a loaded machine.
 */
import { spawn, type SpawnOptions } from 'node:child_process';

export interface ProcessResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` to its end (killed after `timeoutMs`) and resolves with its exit status and output. */
export function runProcess(command: string, args: readonly string[], options: SpawnOptions & { timeoutMs?: number; stdinFd?: number } = {}): Promise<ProcessResult> {
  const { timeoutMs, stdinFd, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    // stdin: an open file descriptor when given (the caller closes it), nothing otherwise.
    const child = spawn(command, args, { ...spawnOptions, stdio: [stdinFd ?? 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Like runProcess, but rejects unless the command exits 0 (with the end of its stderr in the message). */
export async function runChecked(command: string, args: readonly string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<ProcessResult> {
  const result = await runProcess(command, args, options);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status ?? result.signal}: ${result.stderr.slice(-2000)}`);
  return result;
}
