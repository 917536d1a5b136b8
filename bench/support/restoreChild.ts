/**
 * Child process of bench/fetch.bench.ts: one whole restore with the environment it is given, so that its peak
 * RSS is the restore's alone. Prints one JSON line: elapsed ms, the answer, and maxRSS in KiB.
 * The bench bundles it with esbuild and runs it with plain node, as Lambda runs the bundled function (no tsx
 * loader thread in the figures). argv: dataspace segmentId destination concurrency
 */
import { readFileSync } from 'node:fs';
import { fetchInvocationSchema, parseWith } from '../../src/core/messages.ts';
import { createRuntime } from '../../src/core/runtime.ts';
import { fetchSegment } from '../../src/fetch/fetchSegment.ts';

const [dataspace, segmentId, destination, concurrency] = process.argv.slice(2);
const invocation = parseWith(fetchInvocationSchema, { dataspace, segmentId, destination }, 'fetch invocation');
const runtime = await createRuntime(process.env);
const baselineKiB = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
const started = performance.now();
const answer = await fetchSegment(runtime, invocation, { concurrency: Number(concurrency) });
const ms = performance.now() - started;
// VmHWM is the peak RSS of this process image; getrusage's maxRSS would carry the (large) parent's over fork.
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
console.log(JSON.stringify({ ms, answer, baselineKiB, maxRssKiB: Number(hwm ?? process.resourceUsage().maxRSS) }));
