/**
 * `bucket-storage <command> --help` (or `bucket-storage help <command>`): the command's usage, what it does, one
 * line per option and an example, printed to stdout with exit status 0. The text comes from the command's own
 * `help` (command.ts): one place per command, checked by the type of defineCommand to name every option.
 */
import type { Command } from './command.ts';

/** True when argv asks for help: --help or -h anywhere before a `--` terminator. */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** The help text of one command. */
export function commandHelp(command: Command): string {
  const { help } = command;
  const rows = [...Object.entries(help.arguments ?? {}), ...Object.keys(command.options).map((o) => [`--${o}`, help.options[o] ?? ''] as const)];
  const width = Math.max(12, ...rows.map(([flag]) => flag.length)) + 2;
  const lines = [`usage: bucket-storage ${command.usage}`, '', wrap(help.description ?? command.summary), ''];
  if (rows.length > 0) lines.push('options:', ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`), '');
  lines.push(help.examples.length > 1 ? 'examples:' : 'example:', ...help.examples.map((e) => `  ${e}`), '');
  return lines.join('\n');
}

/** The overview: every command with its summary. */
export function overview(commands: Readonly<Record<string, Command>>): string {
  const lines = Object.values(commands).map((c) => `  ${c.usage.padEnd(56)} ${c.summary}`);
  return `usage: bucket-storage <command> [options]\n${lines.join('\n')}\n\nbucket-storage <command> --help shows a command's options and an example.\n`;
}

function wrap(text: string, width = 100): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') out.push(line);
  return out.join('\n');
}
