/** A cleanup run's report as the metrics of the run (src/core/metrics.ts). */
import type { CleanupCounts } from '../core/metrics.ts';
import type { CleanupReport } from './runCleanup.ts';

export function cleanupCounts(report: CleanupReport): CleanupCounts {
  return {
    marked: report.marked,
    done: report.segmentsDeleted,
    kept: report.dryRun ? report.left : 0,
    failed: report.failures.length,
    messagesLeft: report.left,
    malformed: report.malformed,
  };
}
