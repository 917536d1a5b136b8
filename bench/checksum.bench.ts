/**
 * The per-part checksum: what each algorithm S3 accepts costs in node, in CPU seconds per GiB, over 16 MiB parts
 * (the default part size) held in memory. The upload sends ChecksumCRC32 computed by zlib's native crc32
 * (src/core/multipartUpload.ts); this bench is why: the hashes run in OpenSSL, CRC32C and CRC64NVME only in the
 * SDK's JavaScript (@aws-sdk/checksums, a dependency of the S3 client; its CRT variant needs a native module the
 * bundles do not ship). Also MD5, the Content-MD5 the SDK once sent. Native ones over 1 GiB, JavaScript ones over
 * 64 MiB (they are one to two orders of magnitude slower).
 */
import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

const MiB = 2 ** 20;
const PART = 16 * MiB;

interface Incremental {
  update(data: Uint8Array): void;
}

/** CPU seconds per GiB of `update` over `total` bytes in PART-sized pieces of the same random part. */
function cpuPerGiB(part: Buffer, total: number, update: (data: Buffer) => void): { cpuPerGiB: number; mibPerS: number } {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let done = 0; done < total; done += part.length) update(part);
  const used = process.cpuUsage(cpu);
  const wallS = (performance.now() - started) / 1000;
  return { cpuPerGiB: (used.user + used.system) / 1e6 / (total / 2 ** 30), mibPerS: total / MiB / wallS };
}

/** The SDK's JavaScript CRC32C and CRC64NVME, when the installed S3 client carries them. */
async function sdkChecksums(): Promise<Record<string, () => Incremental> | string> {
  try {
    const mod = (await import('@aws-sdk/checksums/crc')) as unknown as Record<string, new () => Incremental>;
    const { Crc32c, Crc64Nvme } = mod;
    if (Crc32c === undefined || Crc64Nvme === undefined) return '@aws-sdk/checksums/crc exports no Crc32c or Crc64Nvme';
    return { 'CRC32C (SDK, JavaScript)': () => new Crc32c(), 'CRC64NVME (SDK, JavaScript)': () => new Crc64Nvme() };
  } catch (err) {
    return `@aws-sdk/checksums/crc not loadable: ${(err as Error).message}`;
  }
}

export async function run(): Promise<void> {
  const part = randomBytes(PART);
  const rows: { name: string; cpuPerGiB: number; mibPerS: number; over: number }[] = [];
  const native = (name: string, update: (data: Buffer) => void) => rows.push({ name, ...cpuPerGiB(part, 2 ** 30, update), over: 2 ** 30 });
  let value = 0;
  native('CRC32 (zlib, native; what the upload sends)', (d) => (value = crc32(d, value)));
  for (const algorithm of ['sha1', 'sha256', 'md5']) {
    const hash = createHash(algorithm);
    native(`${algorithm.toUpperCase()} (OpenSSL, native)`, (d) => hash.update(d));
  }
  const sdk = await sdkChecksums();
  if (typeof sdk === 'string') console.log(`  missing: ${sdk}`);
  else for (const [name, make] of Object.entries(sdk)) {
    const sum = make();
    rows.push({ name, ...cpuPerGiB(part, 64 * MiB, (d) => sum.update(d)), over: 64 * MiB });
  }
  const base = rows[0]?.cpuPerGiB ?? 1;
  console.log('checksum over 16 MiB parts in memory (CPU = user+sys of this process)');
  console.log(`${'algorithm'.padEnd(46)}${'MiB'.padStart(6)}${'MiB/s'.padStart(9)}${'CPU s/GiB'.padStart(11)}${'×CRC32'.padStart(9)}`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(46)}${String(r.over / MiB).padStart(6)}${r.mibPerS.toFixed(0).padStart(9)}${r.cpuPerGiB.toFixed(2).padStart(11)}${(r.cpuPerGiB / base).toFixed(1).padStart(9)}`);
  }
}
