/**
 * `bucket-storage …` as a child process the test can watch and kill: its stdout and stderr as lines, a wait
 * for a line that matches, its exit. Asynchronous, so an embedded server in the test process keeps answering.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface CliChild {
  readonly child: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the first line (stdout or stderr, seen or to come) that matches; rejects after timeoutMs. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves once `count` stdout lines were printed. */
  waitForStdoutLines(count: number, timeoutMs?: number): Promise<void>;
  readonly exited: Promise<number | null>;
}

export function startCli(args: readonly string[], env: Record<string, string | undefined>): CliChild {
  const child = spawn(process.execPath, ['bin/bucket-storage.mjs', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  createInterface({ input: child.stdout! }).on('line', (l) => (stdout.push(l), wake()));
  createInterface({ input: child.stderr! }).on('line', (l) => (stderr.push(l), wake()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => (resolve(code), wake())));
  const until = <T>(check: () => T | undefined, timeoutMs: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const test = () => {
        const found = check();
        if (found !== undefined) {
          waiters.delete(test);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(test);
        reject(new Error(`timed out waiting for ${what}; stdout: ${stdout.join('\n')}\nstderr: ${stderr.slice(-20).join('\n')}`));
      }, timeoutMs);
      waiters.add(test);
      test();
    });
  return {
    child,
    stdout,
    stderr,
    exited,
    waitForLine: (pattern, timeoutMs = 60_000) => until(() => [...stdout, ...stderr].find((l) => pattern.test(l)), timeoutMs, String(pattern)),
    waitForStdoutLines: (count, timeoutMs = 60_000) => until(() => (stdout.length >= count ? true : undefined), timeoutMs, `${count} stdout lines`).then(() => undefined),
  };
}
