/** `invoke upload|fetch|cleanup [--event FILE]`: runs a function's handler once and prints its answer. */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import type { Context } from 'aws-lambda';
import { lambdaContext } from '../../local/lambdaContext.ts';
import { defineCommand, UsageError } from '../command.ts';

type Handler = (event: unknown, context: Context) => Promise<unknown>;

const FUNCTIONS = ['upload', 'fetch', 'cleanup'] as const;

/** Loads functions/<name>.ts by URL, so a function that is not part of this build is a clear error, not a crash. */
async function load(name: string): Promise<{ handler?: unknown }> {
  const mod: unknown = await import(new URL(`../../../functions/${name}.ts`, import.meta.url).href);
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
    if (name === undefined || !FUNCTIONS.some((f) => f === name)) throw new UsageError(`invoke needs a function name: ${FUNCTIONS.join(', ')}`);
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
