/**
 * cleanup (scheduled): within the invocation's time budget, carries out the deletion marks that are due
 * (deleting their segments from every registered bucket) and drains the deletions queue into new marks, due
 * after S3_STORAGE_DELETION_DELAY_HOURS; then, at most hourly and within what time is left, logs the storage
 * used per bucket (src/cleanup/storageSizeLogger.ts). Answers with the run's report.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { DEADLINE_MARGIN_MS } from '../src/core/deadline.ts';
import { logger } from '../src/core/logger.ts';
import { functionMetrics } from '../src/core/functionMetrics.ts';
import { recordCleanup } from '../src/core/metrics.ts';
import { getRuntime } from '../src/core/runtime.ts';
import { cleanupCounts } from '../src/cleanup/cleanupMetrics.ts';
import { runCleanupOnce, type CleanupReport } from '../src/cleanup/runCleanup.ts';
import { logStorageSize, sizeLogStateFor } from '../src/cleanup/storageSizeLogger.ts';

async function cleanupHandler(_event: ScheduledEvent, context: Context): Promise<CleanupReport> {
  const runtime = await getRuntime();
  // The whole remaining time is the budget: runCleanupOnce keeps its own margin to finish the batch in hand.
  const report = await runCleanupOnce(runtime, { budgetMs: context.getRemainingTimeInMillis() });
  logger.info('cleanup run', { ...report, failures: report.failures.slice(0, 20) });
  recordCleanup(cleanupCounts(report));
  // After the deletions, in the time they left: the storage size never delays a deletion.
  await logStorageSize(runtime, sizeLogStateFor(runtime), { budgetMs: context.getRemainingTimeInMillis() - 2 * DEADLINE_MARGIN_MS });
  return report;
}

export const handler = middy(cleanupHandler).use(injectLambdaContext(logger)).use(functionMetrics('cleanup'));
