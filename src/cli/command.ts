/** What every CLI command module exports. */
import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  /** Parsed --options. */
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  /** Positional arguments after the command name. */
  readonly positionals: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: OptionSpec;
  /** Resolves to the exit status. */
  run(ctx: CommandContext): Promise<number>;
}

/** A required string option, or a UsageError naming it. */
export function requireOption(ctx: CommandContext, name: string): string {
  const v = ctx.values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** Bad command-line usage: exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
