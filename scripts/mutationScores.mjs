#!/usr/bin/env node
// Mutation scores per file and per folder from one or more StrykerJS JSON reports (reports/mutation/mutation.json
// of scoped runs, docs/DEVELOPMENT.md "Mutation testing"):
//   node scripts/mutationScores.mjs RUN.json [RUN2.json …] [--survivors] [--union]
// A file mutated by several runs counts with the last report given that holds it (give them oldest first).
// --union: a file mutated by several runs whose source is the same in each counts once, each mutant (same
// place, mutator and replacement) detected if any of those runs detected it: the score of the union of their
// test sets (runs that each ran a part of the suite, e.g. the integration tests and the unit tests).
// Score = (killed + timed out) / (killed + timed out + survived + no coverage), as Stryker computes it; compile
// errors and ignored (static) mutants are outside it. --survivors lists the surviving and uncovered mutants.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const showSurvivors = args.includes('--survivors');
const union = args.includes('--union');
const reports = args.filter((a) => !a.startsWith('--'));
if (reports.length === 0) {
  console.error('usage: node scripts/mutationScores.mjs RUN.json [RUN2.json …] [--survivors]');
  process.exit(2);
}

const STATUSES = ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'CompileError', 'Ignored'];
/** file → { run, counts, survivors } of the last report holding it */
const files = new Map();
for (const path of reports) {
  const report = JSON.parse(readFileSync(path, 'utf8'));
  for (const [file, result] of Object.entries(report.files)) {
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    const survivors = [];
    const lines = result.source.split('\n');
    const earlier = files.get(file);
    const detectedBefore = union && earlier?.source === result.source ? earlier.detected : new Set();
    const detected = new Set(detectedBefore);
    const runs = union && earlier?.source === result.source ? `${earlier.run}+` : '';
    for (const original of result.mutants) {
      const id = `${original.location.start.line}:${original.location.start.column}-${original.location.end.line}:${original.location.end.column} ${original.mutatorName} ${original.replacement ?? ''}`;
      const m = detectedBefore.has(id) && (original.status === 'Survived' || original.status === 'NoCoverage') ? { ...original, status: 'Killed' } : original;
      if (m.status === 'Killed' || m.status === 'Timeout') detected.add(id);
      counts[m.status] = (counts[m.status] ?? 0) + 1;
      if (m.status === 'Survived' || m.status === 'NoCoverage') {
        const { start, end } = m.location;
        const original = start.line === end.line ? lines[start.line - 1].slice(start.column - 1, end.column - 1) : `${lines[start.line - 1].slice(start.column - 1)} …`;
        survivors.push(`${m.status}\t${file}:${start.line}:${start.column}\t${m.mutatorName}\t${JSON.stringify(original).slice(0, 90)} -> ${JSON.stringify(m.replacement ?? '').slice(0, 90)}`);
      }
    }
    files.set(file, { run: runs + path.replace(/^.*\//, '').replace(/\.json$/, ''), counts, survivors, source: result.source, detected });
  }
}

const valid = (c) => c.Killed + c.Timeout + c.Survived + c.NoCoverage;
const score = (c) => (valid(c) === 0 ? 'n/a' : `${((100 * (c.Killed + c.Timeout)) / valid(c)).toFixed(2)}%`);
const add = (a, b) => Object.fromEntries(STATUSES.map((s) => [s, (a[s] ?? 0) + b[s]]));
const folderOf = (file) => (file.startsWith('src/core/') ? 'src/core' : file.split('/').slice(0, 2).join('/'));

console.log('file\trun\tvalid\tkilled\ttimeout\tsurvived\tno coverage\tscore');
const folders = new Map();
for (const [file, { run, counts }] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`${file}\t${run}\t${valid(counts)}\t${counts.Killed}\t${counts.Timeout}\t${counts.Survived}\t${counts.NoCoverage}\t${score(counts)}`);
  folders.set(folderOf(file), add(folders.get(folderOf(file)) ?? {}, counts));
}
console.log('\nfolder\tvalid\tkilled\ttimeout\tsurvived\tno coverage\tscore');
let rest = {};
for (const [folder, counts] of [...folders].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`${folder}\t${valid(counts)}\t${counts.Killed}\t${counts.Timeout}\t${counts.Survived}\t${counts.NoCoverage}\t${score(counts)}`);
  if (folder !== 'src/core') rest = add(rest, counts);
}
if (Object.keys(rest).length > 0) console.log(`src/ except src/core\t${valid(rest)}\t${rest.Killed}\t${rest.Timeout}\t${rest.Survived}\t${rest.NoCoverage}\t${score(rest)}`);
if (showSurvivors) {
  console.log('');
  for (const { survivors } of files.values()) for (const line of survivors) console.log(line);
}
