/**
 * cleanup (scheduled): within the invocation's time budget, carries out the deletion marks that are due
 * (deleting their segments from every registered bucket) and drains the deletions queue into new marks, due
 * after S3_STORAGE_DELETION_DELAY_HOURS. Answers with the run's report.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { logger } from '../src/core/logger.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { runCleanupOnce, type CleanupReport } from '../src/cleanup/runCleanup.ts';

async function cleanupHandler(_event: ScheduledEvent, context: Context): Promise<CleanupReport> {
  // The whole remaining time is the budget: runCleanupOnce keeps its own margin to finish the batch in hand.
  const report = await runCleanupOnce(await getRuntime(), { budgetMs: context.getRemainingTimeInMillis() });
  logger.info('cleanup run', { ...report, failures: report.failures.slice(0, 20) });
  return report;
}

export const handler = middy(cleanupHandler).use(injectLambdaContext(logger));
