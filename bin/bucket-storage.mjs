#!/usr/bin/env node
// Entry of `npx bucket-storage`. Runs the compiled CLI (dist/cli/main.mjs, from `npm run build`) while it is
// newer than every source it was compiled from; otherwise the TypeScript itself through tsx's loader (no build
// step needed), which costs most of a second of CPU at start (`encrypt` of a file is then mostly start-up).
// Commands write their answers to stdout themselves; logs (Powertools, through the global console in its dev
// mode) go to stderr, so `invoke … | jq` sees only the answer.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = join(root, 'dist/cli/main.mjs');

/** The newest modification time under `path` (files and directories, recursively). */
function newest(path) {
  const info = statSync(path, { throwIfNoEntry: false });
  if (info === undefined) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  let latest = info.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

function compiledIsCurrent() {
  const built = statSync(compiled, { throwIfNoEntry: false })?.mtimeMs;
  if (built === undefined) return false;
  return ['src', 'functions', 'package-lock.json', 'tsconfig.json'].every((p) => newest(join(root, p)) < built);
}

// Node's warnings, one line each. The AWS SDK's NodeVersionSupportWarning (8 lines on Node 20: "versions
// published after January 2027 will require node >=22") is dropped: it is about the SDK's future releases, not
// this run, and it would break the one-line-on-stderr promise of every failing command. Lambda runs Node 22,
// where the SDK does not emit it.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'NodeVersionSupportWarning' || warning.message.startsWith('NodeVersionSupportWarning')) return;
  process.stderr.write(`bucket-storage: ${warning.name}: ${warning.message.replace(/\s*\n\s*/g, ' ')}\n`);
});

process.env.POWERTOOLS_DEV ??= 'true';
console.log = console.error;
console.info = console.error;
console.debug = console.error;
let main;
if (compiledIsCurrent()) {
  ({ main } = await import(compiled));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
