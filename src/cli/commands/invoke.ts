/** `invoke upload|fetch|cleanup [--event FILE]`: runs a function's handler once and prints its answer. */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import type { Context } from 'aws-lambda';
import { lambdaContext } from '../../local/lambdaContext.ts';
import { defineCommand, UsageError } from '../command.ts';

type Handler = (event: unknown, context: Context) => Promise<unknown>;

/** The functions' modules, loaded on use (named imports, so the compiled CLI carries them as chunks); one that
 *  fails to load is a clear error, not a crash. */
const FUNCTIONS = {
  upload: () => import('../../../functions/upload.ts'),
  fetch: () => import('../../../functions/fetch.ts'),
  cleanup: () => import('../../../functions/cleanup.ts'),
} as const;

function isFunctionName(name: string | undefined): name is keyof typeof FUNCTIONS {
  return name !== undefined && Object.hasOwn(FUNCTIONS, name);
}

async function load(name: keyof typeof FUNCTIONS): Promise<{ handler?: unknown }> {
  const mod: unknown = await FUNCTIONS[name]();
  return typeof mod === 'object' && mod !== null ? mod : {};
}

function isHandler(value: unknown): value is Handler {
  return typeof value === 'function';
}

export const invokeCommand = defineCommand({
  summary: "runs a function's handler once with the event (JSON; stdin without --event) and prints its answer",
  usage: 'invoke upload|fetch|cleanup [--event FILE]',
  options: { event: { type: 'string' } },
  help: {
    description: "Runs one function's handler once, in this process, with the event (JSON) and prints its answer as JSON. The sample events in events/ are made for it.",
    arguments: { 'upload|fetch|cleanup': 'the function to run' },
    options: { event: 'file holding the event (default: stdin)' },
    examples: ['bucket-storage invoke fetch --event events/fetch-whole.json'],
  },
  async run(ctx) {
    const name = ctx.positionals[0];
    if (!isFunctionName(name)) throw new UsageError(`invoke needs a function name: ${Object.keys(FUNCTIONS).join(', ')}`);
    const file = ctx.values.event;
    const raw = typeof file === 'string' ? await readFile(file, 'utf8') : await text(ctx.stdin);
    let event: unknown;
    try {
      event = JSON.parse(raw);
    } catch (err) {
      throw new UsageError(`the event is not JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    let mod: { handler?: unknown };
    try {
      mod = await load(name);
    } catch (err) {
      throw new UsageError(`function ${name} cannot be loaded: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!isHandler(mod.handler)) throw new UsageError(`functions/${name}.ts does not export a handler`);
    const answer = await mod.handler(event, lambdaContext(name));
    ctx.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  },
});
