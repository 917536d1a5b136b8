import { createClients } from '../../core/clients.ts';
import { requireQueueUrl } from '../../core/queues.ts';
import { loadConfig } from '../../core/config.ts';
import { lambdaContext } from '../../local/lambdaContext.ts';
import { scheduledEvent } from '../../local/lambdaEvents.ts';
import { serveQueue } from '../../local/serve.ts';
import { wholeNumberOption, type Command } from '../command.ts';

export const serveCommand: Command = {
  summary: "runs the functions locally: polls the segments queue like Lambda's event source mapping",
  usage: 'serve [--batch-size N] [--retry-delay S] [--until-idle N] [--cleanup-every S] [--cleanup-budget S]',
  options: { 'batch-size': { type: 'string' }, 'retry-delay': { type: 'string' }, 'until-idle': { type: 'string' }, 'cleanup-every': { type: 'string' }, 'cleanup-budget': { type: 'string' } },
  async run(ctx) {
    const config = loadConfig(ctx.env);
    const queueUrl = requireQueueUrl(config, 'segments');
    const num = (name: string, min: number, max: number): number | undefined => wholeNumberOption(ctx, name, min, max);
    const { handler } = await import('../../../functions/upload.ts');
    // Like the scheduled rule of the stack: the cleanup function runs on a timer when a deletions queue is set.
    const cleanupEvery = num('cleanup-every', 1, 86_400) ?? 60;
    // Each run's time budget, as the cleanup function's timeout gives it in Lambda.
    const cleanupBudget = num('cleanup-budget', 2, 900) ?? 60;
    const timers = config.deletionsQueueUrl === undefined ? [] : [{ everyMs: cleanupEvery * 1000, run: async () => {
      const cleanup = await import('../../../functions/cleanup.ts');
      const report = await cleanup.handler(scheduledEvent(config.region), lambdaContext('cleanup', cleanupBudget * 1000));
      ctx.stderr.write(`serve: cleanup ${JSON.stringify({ received: report.received, marked: report.marked, completed: report.completed, left: report.left, marksApplied: report.marksApplied, segmentsDeleted: report.segmentsDeleted })}\n`);
    } }];
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    ctx.stderr.write(`serve: polling ${queueUrl}\n`);
    const totals = await serveQueue({
      sqs: createClients(config).sqs,
      queueUrl,
      region: config.region,
      handler: (event, context) => handler(event, context),
      batchSize: num('batch-size', 1, 10),
      retryDelaySeconds: num('retry-delay', 0, 43200),
      stopWhenIdleFor: num('until-idle', 1, 1_000_000),
      signal: controller.signal,
      timers,
      onBatch: (received, failed) => ctx.stderr.write(`serve: batch of ${received}, ${failed} failed\n`),
    });
    ctx.stdout.write(`${JSON.stringify(totals)}\n`);
    return 0;
  },
};
