/**
 * The chaos suite's ledger: each scenario records what it tried and what it found; the global teardown
 * (summary.global.ts) prints one table. Records go to a JSON-lines file so forked test workers can add to it.
 *
 * Every figure is a counter the scenario incremented on an observation (see observe.ts and the scenarios);
 * a figure a scenario did not measure is left out and printed as "not measured", never written as a literal.
 */
import { appendFileSync } from 'node:fs';

export interface ChaosRecord {
  readonly scenario: string;
  /** Faults injected, by kind, as the fault proxy counted them (or the test as it sent them: kills, poison). */
  readonly faults: Readonly<Record<string, number>>;
  /** Requests or messages sent again, as seen: SDK attempts beyond the first ($metadata.attempts), GETs the
   *  object reader resumed, uploads started again after a kill (proxy log), messages handled more than once. */
  readonly retried?: number;
  /** Segments whose restored content's SHA-256 was computed and compared with the source's. */
  readonly segmentsChecked?: number;
  /** Segments whose content differed, or whose restore failed. */
  readonly losses?: number;
  /** Seeded keys (other clusters' prefixes, non-segment objects) missing after the scenario's cleanup runs. */
  readonly foreignDeletions?: number;
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
