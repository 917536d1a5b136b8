/**
 * Child of bench/codec.bench.ts: `encrypt IN OUT` (SHA-256 + format v1, as an upload does) or `decrypt IN OUT`,
 * file → file, with the key in S3_STORAGE_ENCRYPTION_KEY. Prints one JSON line: ms and peak RSS (KiB).
 */
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Sha256Meter } from '../../src/core/sha256Meter.ts';
import { KeyRing } from '../../src/core/keyRing.ts';
import { Secret } from '../../src/core/secret.ts';
import { createDecryptStream, createEncryptStream } from '../../src/core/format/index.ts';
import { peakRssKiB } from './child.ts';

const [mode, input, output] = process.argv.slice(2) as [string, string, string];
const ring = await KeyRing.fromSecrets(new Secret(process.env.S3_STORAGE_ENCRYPTION_KEY ?? ''), [], async (s) => s.reveal());
const identity = { dataspace: 'bench', segmentId: 'codec' };
const started = performance.now();
const source = createReadStream(input, { highWaterMark: 1 << 20 });
if (mode === 'encrypt') await pipeline(source, new Sha256Meter(), createEncryptStream({ key: ring.current!, identity }), createWriteStream(output));
else await pipeline(source, createDecryptStream({ keyRing: ring, identity }), createWriteStream(output));
const ms = performance.now() - started;
console.log(JSON.stringify({ ms, maxRssKiB: peakRssKiB(readFileSync('/proc/self/status', 'utf8')) }));
