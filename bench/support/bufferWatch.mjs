// Preload for our bench children (BENCH_NODE_IMPORT=bench/support/bufferWatch.mjs npm run bench peers): where the
// Buffers peak goes. Counts every Buffer of 1 MiB or more by size and allocating stack, samples the peak of
// process.memoryUsage().arrayBuffers every 20 ms and, with BENCH_GC_MS set, forces a garbage collection at that
// interval (what is left then is live, not garbage awaiting the collector). Writes bufferWatch-<pid>.txt into
// BENCH_WATCH_DIR (default: the OS temp dir) when the child exits.
import { Buffer } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import { setInterval } from 'node:timers';
import vm from 'node:vm';

const large = new Map();
for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow']) {
  const original = Buffer[name];
  Buffer[name] = function (size, ...rest) {
    if (size >= 1 << 20) {
      const where = `${name}(${size}) ${new Error().stack.split('\n').slice(2, 6).map((l) => l.trim()).join(' < ')}`;
      large.set(where, (large.get(where) ?? 0) + 1);
    }
    return original.call(this, size, ...rest);
  };
}
const gcMs = Number(process.env.BENCH_GC_MS ?? 0);
let collect;
if (gcMs > 0) {
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc');
}
let peak = 0;
let at = 0;
setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  if (collect !== undefined && (at += 20) >= gcMs) {
    at = 0;
    collect();
  }
}, 20).unref();
process.on('exit', () => {
  const lines = [`peak arrayBuffers ${(peak / 2 ** 20).toFixed(1)} MiB${gcMs > 0 ? ` (collector forced every ${gcMs} ms)` : ''}`];
  let total = 0;
  for (const [where, count] of large) {
    total += count * Number(/\((\d+)\)/.exec(where)?.[1] ?? 0);
    lines.push(`${count} × ${where}`);
  }
  lines.splice(1, 0, `Buffers of 1 MiB or more allocated: ${(total / 2 ** 20).toFixed(1)} MiB in all`);
  writeFileSync(join(process.env.BENCH_WATCH_DIR ?? tmpdir(), `bufferWatch-${process.pid}.txt`), lines.join('\n') + '\n');
});
