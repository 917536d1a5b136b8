import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChaosRecord } from './summary.ts';

const NOT_MEASURED = 'not measured';
const FIGURES = [
  ['retried', 'retried'],
  ['segmentsChecked', 'segments checked'],
  ['losses', 'losses'],
  ['foreignDeletions', 'foreign deletions'],
] as const;

const figure = (value: number | undefined) => (value === undefined ? NOT_MEASURED : String(value));

/** The sum of the rows that measured it; "not measured" when none did. */
function total(values: readonly (number | undefined)[]): string {
  const measured = values.filter((v): v is number => v !== undefined);
  return measured.length === 0 ? NOT_MEASURED : String(measured.reduce((a, b) => a + b, 0));
}

export default function setup(): () => void {
  const ledger = join(tmpdir(), `bks-chaos-${process.pid}.jsonl`);
  rmSync(ledger, { force: true });
  process.env.BKS_CHAOS_LEDGER = ledger;
  return () => {
    const rows: ChaosRecord[] = existsSync(ledger)
      ? readFileSync(ledger, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ChaosRecord)
      : [];
    rmSync(ledger, { force: true });
    const faultKinds = [...new Set(rows.flatMap((r) => Object.keys(r.faults)))].sort();
    const header = ['scenario', ...faultKinds, ...FIGURES.map(([, title]) => title)];
    const lines = rows.map((r) => [r.scenario, ...faultKinds.map((k) => (k in r.faults ? String(r.faults[k]) : '-')), ...FIGURES.map(([field]) => figure(r[field]))]);
    const totals = ['TOTAL', ...faultKinds.map((k) => total(rows.map((r) => r.faults[k]))), ...FIGURES.map(([field]) => total(rows.map((r) => r[field])))];
    const table = [header, ...lines, totals];
    const widths = header.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)));
    console.log('\nChaos summary (faults injected by kind, "-" where a scenario injects none; losses and foreign deletions must be 0)');
    for (const row of table) console.log(row.map((c, i) => c.padStart(i === 0 ? 0 : widths[i] ?? 0).padEnd(i === 0 ? widths[0] ?? 0 : 0)).join('  '));
    for (const r of rows) if (r.note) console.log(`  ${r.scenario}: ${r.note}`);
  };
}
