/**
 * BENCH_CLIENT_CPUS=0 (a taskset CPU list): every client process runs on those cores only, and the servers and
 * this harness on the others. With one core it is the client a Lambda function has at up to 1,769 MB (one vCPU,
 * and less of it below): what each client does with one core, without the second core a local machine lends
 * to rclone's and aws's threads, and without a server competing for the client's core. measure() pins every client
 * and servers.ts every server when the variable is set; only the peers bench also moves its own harness.
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';

function parseList(list: string, cores: number): number[] {
  const out = new Set<number>();
  for (const part of list.split(',')) {
    const range = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (range === null) throw new Error(`BENCH_CLIENT_CPUS=${list}: "${part}" is not a core number or range (taskset's list format, e.g. 0 or 0-1)`);
    const from = Number(range[1]);
    const to = range[2] === undefined ? from : Number(range[2]);
    if (to < from) throw new Error(`BENCH_CLIENT_CPUS=${list}: the range "${part.trim()}" runs backwards (write ${to}-${from})`);
    for (let c = from; c <= to; c++) out.add(c);
  }
  const bad = [...out].filter((c) => c >= cores);
  if (bad.length > 0) throw new Error(`BENCH_CLIENT_CPUS=${list}: this machine has cores 0-${cores - 1}, not ${bad.join(', ')}`);
  return [...out].sort((a, b) => a - b);
}

export interface CpuPinning {
  /** Cores of the clients, and of everything else (servers, harness). */
  readonly client: readonly number[];
  readonly rest: readonly number[];
  /** `cmd args` run on the client's cores. */
  wrap(cmd: string, args: readonly string[]): [string, string[]];
  /** Moves a running process, every thread of it, to the other cores. */
  pinToRest(pid: number): void;
}

/** The pinning `list` asks for (default BENCH_CLIENT_CPUS), or undefined when it is unset. */
export function cpuPinning(list = process.env.BENCH_CLIENT_CPUS, cores = cpus().length): CpuPinning | undefined {
  if (list === undefined || list.trim() === '') return undefined;
  const client = parseList(list, cores);
  const rest = Array.from({ length: cores }, (_, c) => c).filter((c) => !client.includes(c));
  if (rest.length === 0) throw new Error(`BENCH_CLIENT_CPUS=${list} leaves no core for the servers: name fewer than ${cores}`);
  return {
    client,
    rest,
    wrap: (cmd, args) => ['taskset', ['-c', client.join(','), cmd, ...args]],
    pinToRest: (pid) => void execFileSync('taskset', ['-a', '-p', '-c', rest.join(','), String(pid)], { stdio: 'ignore' }),
  };
}

/** This process's BENCH_CLIENT_CPUS, read once for measure(), the servers and the peers bench. */
export const benchPinning = cpuPinning();
