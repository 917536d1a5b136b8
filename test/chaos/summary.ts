/**
 * The chaos suite's ledger: each scenario records what it tried and what it found; the global teardown
 * (summary.global.ts) prints one table. Records go to a JSON-lines file so forked test workers can add to it.
 */
import { appendFileSync } from 'node:fs';

export interface ChaosRecord {
  readonly scenario: string;
  readonly faults: Readonly<Record<string, number>>;
  /** Requests sent again by SDK retries or by the pipeline's own resumption/redelivery. */
  readonly retried: number;
  readonly segmentsChecked: number;
  readonly losses: number;
  readonly foreignDeletions: number;
  readonly note?: string;
}

export function recordChaos(record: ChaosRecord): void {
  const file = process.env.BKS_CHAOS_LEDGER;
  if (file) appendFileSync(file, `${JSON.stringify(record)}\n`);
}

/** CHAOS_SCALE=small (CI) or full: scales counts of the heavier scenarios. */
export function scaled(full: number, small: number): number {
  return process.env.CHAOS_SCALE === 'small' ? small : full;
}
