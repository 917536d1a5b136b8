/**
 * Child of bench/upload.bench.ts: one upload of argv[2] (a file under S3_STORAGE_SOURCE_ROOT) as segment
 * bench/argv[3], with the environment it is given. Prints one JSON line: ms, the result, and peak RSS (KiB).
 */
import { readFileSync } from 'node:fs';
import { createRuntime } from '../../src/core/runtime.ts';
import { uploadSegment } from '../../src/upload/uploadSegment.ts';
import { peakRssKiB } from './child.ts';

const [path, segmentId] = process.argv.slice(2) as [string, string];
const runtime = await createRuntime(process.env);
const started = performance.now();
const result = await uploadSegment(runtime, { version: 1, dataspace: 'bench', segmentId, source: `file://${path}` });
const ms = performance.now() - started;
console.log(JSON.stringify({ ms, result, maxRssKiB: peakRssKiB(readFileSync('/proc/self/status', 'utf8')) }));
