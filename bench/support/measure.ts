/**
 * One client process, measured as an operator would with `/usr/bin/time`: wall time, user and system CPU of the
 * process and every child it waited for, and its peak RSS (ru_maxrss of the exec'd image: VmHWM). The
 * environment is built from scratch (PATH, HOME and what the caller gives), so no S3_STORAGE_* or AWS_* of the
 * bench's own shell leaks into a client.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './child.ts';
import { BETWEEN_LINE } from './between.ts';
import { benchPinning } from './cpuPinning.ts';

export interface Measured {
  /** Wall seconds, from spawn to exit, as the parent saw them. */
  readonly wallS: number;
  readonly userS: number;
  readonly sysS: number;
  /** Peak RSS of the process, KiB. */
  readonly maxRssKiB: number;
  /**
   * Minor page faults (ru_minflt): pages the process touched for the first time since they were mapped. On this
   * Firecracker VM each costs 11–15 µs of CPU (a 4 KiB page; docs/DEVELOPMENT.md, "Fresh memory"), so a client
   * that keeps touching fresh memory pays for it in CPU seconds.
   */
  readonly minorFaults: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class ClientFailed extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`${command} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 600)}`);
    this.name = 'ClientFailed';
  }
}

/** Seconds a client may run before it is stopped and its cell reported as failed (rclone's 4 GiB upload to fauxqs retries for good). */
const CLIENT_LIMIT_S = Number(process.env.BENCH_CLIENT_LIMIT_S ?? 600);

const BASE_ENV_NAMES = ['PATH', 'HOME', 'LANG', 'TMPDIR', 'PYENV_ROOT', 'PYENV_VERSION', 'BENCH_GC_MS', 'BENCH_WATCH_DIR'];

/** PATH, HOME and a few harmless variables of this process, then `env`. */
export function cleanEnv(env: Record<string, string>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const name of BASE_ENV_NAMES) {
    const value = process.env[name];
    if (value !== undefined) base[name] = value;
  }
  return { ...base, ...env };
}

export interface MeasureOptions {
  /**
   * Work of the bench's own while the child waits: run when the child prints BETWEEN_LINE, after which the child
   * gets a line on its stdin and goes on. Its time is left out of wallS (the child is idle meanwhile).
   */
  readonly between?: () => Promise<void>;
}

/** Runs `cmd args` under /usr/bin/time with exactly `env` (see cleanEnv); rejects with ClientFailed on a non-zero exit. */
export async function measure(cmd: string, args: readonly string[], env: Record<string, string>, scratch: string, options: MeasureOptions = {}): Promise<Measured> {
  const timeFile = join(scratch, `time-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const started = performance.now();
  let betweenMs = 0;
  let timedOut = false;
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    // Its own process group, so that a client past the time limit is stopped with every process it started.
    // taskset execs the client, so /usr/bin/time still measures the client's own process.
    const [run, runArgs] = benchPinning?.wrap(cmd, args) ?? [cmd, [...args]];
    const between = options.between;
    const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %M %R', run, ...runArgs], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    // Without `between` the child's stdin is at its end from the start, as /dev/null would be.
    if (between === undefined) child.stdin.end();
    const stopGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group ended meanwhile: nothing left to stop
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stopGroup();
    }, CLIENT_LIMIT_S * 1000);
    let out = '';
    let err = '';
    let betweenBegun = false;
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (between === undefined || betweenBegun || !out.includes(`${BETWEEN_LINE}\n`)) return;
      betweenBegun = true;
      const betweenStarted = performance.now();
      between().then(
        () => {
          betweenMs = performance.now() - betweenStarted;
          child.stdin.end('go\n');
        },
        (failure: unknown) => {
          reject(failure instanceof Error ? failure : new Error(String(failure)));
          stopGroup();
        },
      );
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (exit) => {
      clearTimeout(timer);
      resolve({ code: exit, stdout: out, stderr: err });
    });
  });
  const wallS = (performance.now() - started - betweenMs) / 1000;
  const times = await readFile(timeFile, 'utf8').catch(() => '');
  await rm(timeFile, { force: true });
  if (timedOut) throw new ClientFailed([cmd, ...args].join(' '), code, `stopped after ${CLIENT_LIMIT_S} s (BENCH_CLIENT_LIMIT_S)`);
  if (code !== 0) throw new ClientFailed([cmd, ...args].join(' '), code, stderr || stdout);
  const figures = timeFigures(times);
  if (figures === undefined) throw new Error(`/usr/bin/time wrote no figures for ${cmd}: ${times}`);
  return { wallS, ...figures, stdout, stderr };
}

/**
 * The figures of `/usr/bin/time -f '%U %S %M %R'`: its last line (a client's own output to the same file, such
 * as "Command exited with non-zero status", comes before it), or undefined when there is none.
 */
export function timeFigures(text: string): Pick<Measured, 'userS' | 'sysS' | 'maxRssKiB' | 'minorFaults'> | undefined {
  const match = /(\d+\.\d+) (\d+\.\d+) (\d+) (\d+)\s*$/.exec(text);
  if (match === null) return undefined;
  return { userS: Number(match[1]), sysS: Number(match[2]), maxRssKiB: Number(match[3]), minorFaults: Number(match[4]) };
}

/** True when `cmd` can be run (found on PATH and answers `args`). */
export function available(cmd: string, args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('close', (code) => resolve(code === 0));
  });
}
