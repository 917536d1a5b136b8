#!/usr/bin/env node
// Entry of `npx bucket-storage`: runs the TypeScript CLI through tsx's loader (no build step needed).
// Commands write their answers to stdout themselves; logs (Powertools, through the global console in its dev
// mode) go to stderr, so `invoke … | jq` sees only the answer.
import { register } from 'tsx/esm/api';

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
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
