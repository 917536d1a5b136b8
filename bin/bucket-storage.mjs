#!/usr/bin/env node
// Entry of `npx bucket-storage`: runs the TypeScript CLI through tsx's loader (no build step needed).
// Commands write their answers to stdout themselves; logs (Powertools, through the global console in its dev
// mode) go to stderr, so `invoke … | jq` sees only the answer.
import { register } from 'tsx/esm/api';

process.env.POWERTOOLS_DEV ??= 'true';
console.log = console.error;
console.info = console.error;
console.debug = console.error;
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
