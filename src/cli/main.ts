/**
 * `bucket-storage <command> [--options]`: dispatches to the command modules. Exit status 0 on success, 2 on
 * bad usage, 1 on any other failure, with one clear line on stderr.
 */
import { parseArgs } from 'node:util';
import { BucketStorageError } from '../core/errors.ts';
import { UsageError, type Command, type CommandContext } from './command.ts';
import { commands } from './commands/index.ts';

function usage(): string {
  const lines = Object.values(commands).map((c: Command) => `  ${c.usage.padEnd(52)} ${c.summary}`);
  return `usage: bucket-storage <command> [options]\n${lines.join('\n')}\n`;
}

/** Where a run reads and writes (the process's own streams and environment by default; tests pass their own). */
export type CliIo = Partial<Pick<CommandContext, 'stdin' | 'stdout' | 'stderr' | 'env'>>;

export async function main(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === 'help') {
    (name === undefined ? stderr : (io.stdout ?? process.stdout)).write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    stderr.write(`bucket-storage: unknown command ${JSON.stringify(name)}\n${usage()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: [...rest], options: command.options, allowPositionals: true, strict: true });
    return await command.run({
      values,
      positionals,
      env: io.env ?? process.env,
      stdin: io.stdin ?? process.stdin,
      stdout: io.stdout ?? process.stdout,
      stderr,
    });
  } catch (err) {
    const isUsage = err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'));
    const message = err instanceof Error ? err.message : String(err);
    const kind = err instanceof BucketStorageError ? `${err.name}: ` : '';
    stderr.write(`bucket-storage ${name}: ${kind}${message.split('\n')[0]}${isUsage ? `\nusage: bucket-storage ${command.usage}` : ''}\n`);
    return isUsage ? 2 : 1;
  }
}
