/**
 * cleanup (scheduled): drains the deletions queue within the invocation's time budget and deletes each
 * announced segment's object from every registered bucket. Answers with the run's report.
 */
import middy from '@middy/core';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { logger } from '../src/core/logger.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { runCleanupOnce, type CleanupReport } from '../src/cleanup/runCleanup.ts';

async function cleanupHandler(_event: ScheduledEvent, context: Context): Promise<CleanupReport> {
  const report = await runCleanupOnce(await getRuntime(), { budgetMs: context.getRemainingTimeInMillis() });
  logger.info('cleanup run', { ...report, failures: report.failures.slice(0, 20) });
  return report;
}

export const handler = middy(cleanupHandler);
