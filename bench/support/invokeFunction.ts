/**
 * Child of the peers bench: loads one function's deployed bundle (dist/<fn>/index.mjs, built by
 * scripts/build.mjs) in a fresh `node`, as Lambda's runtime does, and invokes its handler once with the event
 * it is given. argv: upload|fetch BUNDLE EVENT_JSON [WARM_EVENT_JSON]. The environment is the function's
 * configuration. Prints, as its last line, one JSON object: module init and handler ms, the handler's own CPU
 * seconds, peak RSS (VmHWM, KiB), the peaks of process.memoryUsage() sampled every 50 ms (MiB: where the RSS
 * goes) and the handler's answer. With WARM_EVENT_JSON the handler is then invoked a second time in the same
 * process, as a warm Lambda container would be, and `warm` reports that invocation alone (ms, user and system
 * CPU seconds, answer). Exits 1 when an upload reports a failed record.
 * It imports nothing of the project: what it measures is the bundle's alone.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { BETWEEN_LINE } from './between.ts';

const [kind, bundle, eventJson, warmEventJson] = process.argv.slice(2);
if ((kind !== 'upload' && kind !== 'fetch') || bundle === undefined || eventJson === undefined) {
  console.error('usage: invokeFunction upload|fetch BUNDLE EVENT_JSON [WARM_EVENT_JSON]');
  process.exit(2);
}
const loadStarted = performance.now();
const mod: unknown = await import(pathToFileURL(bundle).href);
const initMs = performance.now() - loadStarted;
if (typeof mod !== 'object' || mod === null || !('handler' in mod) || typeof mod.handler !== 'function') throw new Error(`${bundle} exports no handler`);
const handler = mod.handler as (event: unknown, context: unknown) => Promise<unknown>;

const deadline = Date.now() + 900_000;
const context = {
  callbackWaitsForEmptyEventLoop: false,
  functionName: `bucket-storage-${kind}`,
  functionVersion: '$LATEST',
  invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:bucket-storage-${kind}`,
  memoryLimitInMB: '1024',
  awsRequestId: `bench-${Date.now()}`,
  logGroupName: 'bench',
  logStreamName: 'bench',
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};

const memoryPeakMiB: Record<string, number> = {};
const sampleMemory = () => {
  for (const [name, bytes] of Object.entries(process.memoryUsage())) memoryPeakMiB[name] = Math.max(memoryPeakMiB[name] ?? 0, Math.round(bytes / 2 ** 20));
};
const sampler = setInterval(sampleMemory, 50);
/** Failed records of an upload's answer (an SQS batch response). */
const failuresOf = (answer: unknown): unknown[] =>
  kind === 'upload' && typeof answer === 'object' && answer !== null && 'batchItemFailures' in answer && Array.isArray(answer.batchItemFailures) ? answer.batchItemFailures : [];

const cpuBefore = process.cpuUsage();
const started = performance.now();
const answer = await handler(JSON.parse(eventJson), context);
const handlerMs = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
let failures = failuresOf(answer);
let warm: { handlerMs: number; userS: number; sysS: number; minorFaults: number; answer: unknown } | undefined;
if (warmEventJson !== undefined && failures.length === 0) {
  // The bench checks and removes the cold restore's file first, so that the warm restore writes into the page
  // cache as the cold one did. Left in place, that file held the pages the warm restore would have reused, and
  // its writes got never-touched ones: 2.2–3.6 s of system CPU per GiB on this VM (docs/DEVELOPMENT.md, "Fresh memory").
  console.log(BETWEEN_LINE);
  await oneLineOfStdin();
  // The same container's next invocation: module, clients, derived keys and compiled code are already there.
  const warmCpuBefore = process.cpuUsage();
  const warmFaultsBefore = process.resourceUsage().minorPageFault;
  const warmStarted = performance.now();
  const warmAnswer = await handler(JSON.parse(warmEventJson), { ...context, awsRequestId: `bench-warm-${Date.now()}` });
  const warmCpu = process.cpuUsage(warmCpuBefore);
  const minorFaults = process.resourceUsage().minorPageFault - warmFaultsBefore;
  warm = { handlerMs: performance.now() - warmStarted, userS: warmCpu.user / 1e6, sysS: warmCpu.system / 1e6, minorFaults, answer: warmAnswer };
  failures = failuresOf(warmAnswer);
}
clearInterval(sampler);
sampleMemory();
const maxRssKiB = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
console.log(JSON.stringify({ bench: { initMs, handlerMs, handlerCpuS: (cpu.user + cpu.system) / 1e6, maxRssKiB, memoryPeakMiB, answer, ...(warm === undefined ? {} : { warm }) } }));
process.exitCode = failures.length > 0 ? 1 : 0;

/** Resolves once a line (or the end) arrives on stdin; stdin is then let go, so it keeps no event loop alive. */
function oneLineOfStdin(): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    const done = () => {
      process.stdin.off('data', onData);
      process.stdin.off('end', done);
      process.stdin.pause();
      process.stdin.unref?.();
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('\n')) done();
    };
    process.stdin.on('data', onData);
    process.stdin.on('end', done);
  });
}
