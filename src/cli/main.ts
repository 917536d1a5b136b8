/**
 * `bucket-storage <command> [--options]`: dispatches to the command modules. Exit status 0 on success, 2 on
 * bad usage, 1 on any other failure, with one clear line on stderr.
 */
import { parseArgs } from 'node:util';
import { BucketStorageError } from '../core/errors.ts';
import { UsageError, type CommandContext } from './command.ts';
import { commands } from './commands/index.ts';
import { commandHelp, overview, wantsHelp } from './help.ts';

/** Every command loaded, in the table's order (for the overview). */
async function usage(): Promise<string> {
  const loaded = await Promise.all(Object.entries(commands).map(async ([name, load]) => [name, await load()] as const));
  return overview(Object.fromEntries(loaded));
}

/** Where a run reads and writes (the process's own streams and environment by default; tests pass their own). */
export type CliIo = Partial<Pick<CommandContext, 'stdin' | 'stdout' | 'stderr' | 'env'>>;

export async function main(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    (name === undefined ? stderr : (io.stdout ?? process.stdout)).write(await usage());
    return name === undefined ? 2 : 0;
  }
  // `help <command>` is `<command> --help`.
  const [target, args] = name === 'help' ? [rest[0] ?? '', ['--help']] : [name, rest];
  const load = Object.hasOwn(commands, target) ? commands[target] : undefined;
  if (load === undefined) {
    stderr.write(`bucket-storage: unknown command ${JSON.stringify(target)}\n${await usage()}`);
    return 2;
  }
  const command = await load();
  if (wantsHelp(args)) {
    (io.stdout ?? process.stdout).write(`${commandHelp(command)}\n`);
    return 0;
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
    stderr.write(`${errorLine(name, err)}${isUsage ? `\nusage: bucket-storage ${command.usage}` : ''}\n`);
    return isUsage ? 2 : 1;
  }
}

/** Longest error line the CLI prints (a hostile input must not make a huge one). */
const MAX_LINE = 4000;

/**
 * The one line a failed command prints: `bucket-storage <command>: [<ErrorClass>: ]<message>`, with line breaks
 * and other control characters escaped (a message is never cut at an embedded newline) and a bounded length.
 */
export function errorLine(command: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const kind = err instanceof BucketStorageError ? `${err.name}: ` : '';
  // eslint-disable-next-line no-control-regex
  const escaped = message.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  const line = `bucket-storage ${command}: ${kind}${escaped}`;
  return line.length <= MAX_LINE ? line : `${line.slice(0, MAX_LINE)}… (${line.length - MAX_LINE} more characters)`;
}
