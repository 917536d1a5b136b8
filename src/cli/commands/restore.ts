/** `restore --dataspace D --segment S --to URL [--range A-B]`: runs the fetch function's restore from the shell. */
import { constants } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fetchInvocationSchema, parseWith } from '../../core/messages.ts';
import { createRuntime } from '../../core/runtime.ts';
import { fetchSegment } from '../../fetch/fetchSegment.ts';
import { requireOption, UsageError, type Command } from '../command.ts';
import { isTerminal } from '../terminal.ts';

const MiB = 1024 * 1024;

export const restoreCommand: Command = {
  summary: 'restores a segment (or a byte range) to file:// or s3://, prints the answer',
  usage: 'restore --dataspace D --segment S --to URL [--range A-B]',
  options: { dataspace: { type: 'string' }, segment: { type: 'string' }, to: { type: 'string' }, range: { type: 'string' } },
  async run(ctx) {
    // Parsed as the fetch function's parser middleware parses its event: the same schema, the same errors.
    const invocation = parseWith(
      fetchInvocationSchema,
      {
        dataspace: requireOption(ctx, 'dataspace'),
        segmentId: requireOption(ctx, 'segment'),
        destination: destinationUrl(requireOption(ctx, 'to')),
        ...(typeof ctx.values.range === 'string' ? { range: parseRange(ctx.values.range) } : {}),
      },
      'fetch invocation',
    );
    const runtime = await createRuntime(ctx.env);
    const tty = isTerminal(ctx.stderr);
    const started = Date.now();
    // SIGINT/SIGTERM stop the restore through its signal: it fails like any other, removing its temporary file.
    const interrupt = onInterrupt();
    try {
      const answer = await fetchSegment(runtime, invocation, {
        signal: interrupt.signal,
        ...(tty ? { onProgress: (written: number, total: number) => ctx.stderr.write(`\r${progressLine(invocation.segmentId, written, total, Date.now() - started)}`) } : {}),
      }).finally(() => {
        if (tty) ctx.stderr.write('\n');
      });
      ctx.stdout.write(`${JSON.stringify(answer)}\n`);
      return 0;
    } catch (err) {
      if (interrupt.received === undefined) throw err;
      ctx.stderr.write(`bucket-storage restore: interrupted by ${interrupt.received}; nothing was written (the temporary file was removed)\n`);
      return 128 + (constants.signals[interrupt.received] ?? 0);
    } finally {
      interrupt.dispose();
    }
  },
};

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type Interrupt = (typeof SIGNALS)[number];

/**
 * Handles SIGINT and SIGTERM for the duration of a command: the first aborts `signal`; later ones are ignored
 * while the command cleans up (the default action would kill it mid-cleanup).
 */
function onInterrupt(): { readonly signal: AbortSignal; readonly received: Interrupt | undefined; dispose(): void } {
  const controller = new AbortController();
  let received: Interrupt | undefined;
  const handlers = SIGNALS.map((name) => {
    const handler = () => {
      if (received !== undefined) return;
      received = name;
      controller.abort(new Error(`interrupted by ${name}`));
    };
    process.on(name, handler);
    return () => process.off(name, handler);
  });
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose: () => handlers.forEach((off) => off()),
  };
}

/** A URL as given, or a plain path made into a file:// URL. */
function destinationUrl(to: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(to)) return to;
  return pathToFileURL(isAbsolute(to) ? to : resolve(to)).href;
}

function parseRange(text: string): { start: number; end: number } {
  const m = /^(\d+)-(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--range ${JSON.stringify(text)}: expected START-END, inclusive byte offsets such as 0-1023`);
  return { start: Number(m[1]), end: Number(m[2]) };
}

export function progressLine(name: string, written: number, total: number, elapsedMs: number): string {
  const pct = total === 0 ? 100 : (100 * written) / total;
  const rate = elapsedMs > 0 ? written / MiB / (elapsedMs / 1000) : 0;
  return `restoring ${name}: ${pct.toFixed(1).padStart(5)}%  ${(written / MiB).toFixed(1)} of ${(total / MiB).toFixed(1)} MiB  ${rate.toFixed(0)} MiB/s`;
}
