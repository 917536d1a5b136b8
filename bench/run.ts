/**
 * `npm run bench [filter]`: runs every bench/*.bench.ts in name order (only those whose name contains the
 * filter, when given). Each module exports `run()`, which prints its own table of figures and ratios. A module
 * that exports `onlyWhenNamed = true` (peers: an hour and more at its full sizes) runs only when the filter is
 * given and names it.
 */
import { readdir } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

const filter = process.argv[2] ?? '';
const dir = new URL('.', import.meta.url);
const files = (await readdir(dir)).filter((f) => f.endsWith('.bench.ts') && f.includes(filter)).sort();
for (const file of files) {
  const mod: unknown = await import(pathToFileURL(new URL(file, dir).pathname).href);
  if (typeof mod !== 'object' || mod === null || !('run' in mod) || typeof mod.run !== 'function') throw new Error(`${file} does not export run()`);
  if ('onlyWhenNamed' in mod && mod.onlyWhenNamed === true && filter === '') {
    console.log(`\n== ${file}: skipped (long; run it as npm run bench ${file.replace('.bench.ts', '')})`);
    continue;
  }
  console.log(`\n== ${file}`);
  await mod.run();
}
