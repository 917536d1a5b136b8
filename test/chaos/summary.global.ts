import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChaosRecord } from './summary.ts';

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
    const header = ['scenario', ...faultKinds, 'retried', 'segments checked', 'losses', 'foreign deletions'];
    const lines = rows.map((r) => [r.scenario, ...faultKinds.map((k) => String(r.faults[k] ?? 0)), String(r.retried), String(r.segmentsChecked), String(r.losses), String(r.foreignDeletions)]);
    const total = ['TOTAL', ...faultKinds.map((k) => String(rows.reduce((s, r) => s + (r.faults[k] ?? 0), 0))), ...['retried', 'segmentsChecked', 'losses', 'foreignDeletions'].map((f) => String(rows.reduce((s, r) => s + Number(r[f as keyof ChaosRecord] ?? 0), 0)))];
    const table = [header, ...lines, total];
    const widths = header.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)));
    console.log('\nChaos summary (faults injected by kind; losses and foreign deletions must be 0)');
    for (const row of table) console.log(row.map((c, i) => c.padStart(i === 0 ? 0 : widths[i] ?? 0).padEnd(i === 0 ? widths[0] ?? 0 : 0)).join('  '));
  };
}
