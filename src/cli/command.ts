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

/** What `bucket-storage <command> --help` prints beside the usage line (help.ts). */
export interface CommandHelp<O extends OptionSpec = OptionSpec> {
  /** A few sentences; the summary when absent. */
  readonly description?: string;
  /** One line per option, for every option the command declares. */
  readonly options: { readonly [K in keyof O]: string };
  /** Positional arguments ("FILE", "upload|fetch|cleanup") and what they are. */
  readonly arguments?: Readonly<Record<string, string>>;
  /** At least one command line that runs as written. */
  readonly examples: readonly [string, ...string[]];
}

export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: OptionSpec;
  readonly help: CommandHelp;
  /** Resolves to the exit status. */
  run(ctx: CommandContext): Promise<number>;
}

/** A command whose help names every one of its options (checked by the compiler). */
export function defineCommand<const O extends OptionSpec>(command: {
  readonly summary: string;
  readonly usage: string;
  readonly options: O;
  readonly help: CommandHelp<O>;
  run(ctx: CommandContext): Promise<number>;
}): Command {
  return command;
}

/** A required string option, or a UsageError naming it. */
export function requireOption(ctx: CommandContext, name: string): string {
  const v = ctx.values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/**
 * A whole-number option in min..max, or undefined when it is absent; UsageError otherwise. Only decimal digits
 * are accepted: `0x10`, `1e3`, ` 5`, `+5` and `5.0` are refused, not read as numbers.
 */
export function wholeNumberOption(ctx: Pick<CommandContext, 'values'>, name: string, min: number, max: number): number | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} ${String(v).slice(0, 80)}: expected a whole number ${min}..${max} in decimal digits`);
  return n;
}

/** Bad command-line usage: exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
