/**
 * What the chaos scenarios count, each figure from an observation:
 * - ContentChecks: a segment counts as checked only when the SHA-256 of its restored bytes was computed and
 *   compared with the source's; a mismatch or a failed restore counts as a loss.
 * - ForeignKeys: keys seeded before a scenario's cleanup runs (other clusters' prefixes, objects that are no
 *   segment, near-miss names); after the runs, a listing of the bucket says how many of them are gone.
 * - uploadPhases: from the fault proxy's request log, what S3 writes were under way at an instant (a kill).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { formatSegmentKey } from '../../src/core/objectKeys.ts';
import type { ProxiedRequest } from '../support/faultProxy.ts';

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class ContentChecks {
  /** Segments whose restored content was hashed and compared. */
  checked = 0;
  /** Of all segments attempted: content that differed, or a restore that failed. */
  losses = 0;

  /** Hashes the restored file and compares it with `expectedSha256`; true when equal. */
  async compareFile(path: string, expectedSha256: string): Promise<boolean> {
    const actual = await sha256OfFile(path);
    this.checked++;
    if (actual !== expectedSha256) this.losses++;
    return actual === expectedSha256;
  }

  /** A restore that failed: nothing to compare, the segment is lost. */
  restoreFailed(): void {
    this.losses++;
  }
}

/** Keys cleanup must never delete, seeded into a bucket. */
export class ForeignKeys {
  private constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    readonly keys: readonly string[],
  ) {}

  /**
   * Seeds the same segments under another cluster's prefix (`segmentIds`, typically the ones about to be
   * deleted), objects that are no segment, and names that only look like segment keys.
   */
  static async seed(s3: S3Client, bucket: string, dataspace: string, segmentIds: readonly string[]): Promise<ForeignKeys> {
    const ours = (id: string) => formatSegmentKey('', { dataspace, segmentId: id });
    const keys = [
      ...segmentIds.map((segmentId) => formatSegmentKey('other-cluster/', { dataspace, segmentId })),
      ...segmentIds.slice(0, 5).map((id) => `${ours(id)}.bak`),
      ...segmentIds.slice(0, 5).map((id) => `${ours(id)}/nested`),
      'notes/readme.txt',
      '_bucket-storage/registry.json',
      `0000/bks/${dataspace}`,
      `zzzz/bks/${dataspace}/not-a-hash-match`,
      `bks/${dataspace}/no-hash-component`,
    ];
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `foreign object ${key}` }));
    return new ForeignKeys(s3, bucket, keys);
  }

  /** Lists the bucket and returns the seeded keys that are gone. */
  async missing(): Promise<string[]> {
    const present = new Set<string>();
    let token: string | undefined;
    for (let page = 0; page < 10_000; page++) {
      const out = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, ContinuationToken: token }));
      for (const c of out.Contents ?? []) if (c.Key !== undefined) present.add(c.Key);
      token = out.NextContinuationToken;
      if (token === undefined) break;
    }
    return this.keys.filter((k) => !present.has(k));
  }
}

export type UploadPhase = 'mid-multipart' | 'single PUT' | 'no upload in flight';

export interface PhaseSnapshot {
  readonly phase: UploadPhase;
  /** Multipart uploads created since `from` and neither completed nor aborted. */
  readonly openUploads: number;
  readonly partsInFlight: number;
  readonly completing: boolean;
}

const query = (url: string) => new URLSearchParams(url.split('?')[1] ?? '');

/** What the S3 writes seen in `log` from index `from` on were doing at this instant. */
export function uploadPhase(log: readonly ProxiedRequest[], from: number): PhaseSnapshot {
  const open = new Set<string>();
  let partsInFlight = 0;
  let completing = false;
  let singlePut = false;
  for (const r of log.slice(from)) {
    const q = query(r.url);
    const uploadId = q.get('uploadId');
    const inFlight = r.endedAt === undefined;
    if (r.method === 'POST' && q.has('uploads')) {
      if (r.uploadId !== undefined) open.add(r.uploadId);
    } else if (r.method === 'PUT' && uploadId !== null) {
      if (inFlight) partsInFlight++;
    } else if (r.method === 'POST' && uploadId !== null) {
      if (inFlight) completing = true;
      else if (r.status === 200) open.delete(uploadId);
    } else if (r.method === 'DELETE' && uploadId !== null) {
      if (!inFlight) open.delete(uploadId);
    } else if (r.method === 'PUT' && inFlight) {
      singlePut = true;
    }
  }
  const phase: UploadPhase = open.size > 0 ? 'mid-multipart' : singlePut ? 'single PUT' : 'no upload in flight';
  return { phase, openUploads: open.size, partsInFlight, completing };
}

/** Writes of an object (PutObject or CreateMultipartUpload) per key in `log`, beyond the first: uploads started again. */
export function restartedUploads(log: readonly ProxiedRequest[]): number {
  const starts = new Map<string, number>();
  for (const r of log) {
    const q = query(r.url);
    const isStart = (r.method === 'POST' && q.has('uploads')) || (r.method === 'PUT' && !q.has('uploadId') && !q.has('partNumber'));
    if (!isStart) continue;
    const key = r.url.split('?')[0] ?? '';
    starts.set(key, (starts.get(key) ?? 0) + 1);
  }
  return [...starts.values()].reduce((sum, n) => sum + n - 1, 0);
}

/**
 * A poison announcement of every kind a node could send, by `i`: bad JSON, an unknown field, a bad identifier, a
 * missing source, a wrong size (`good` is an existing source file under the source root). Each body is distinct.
 */
export function poisonAnnouncement(i: number, dataspace: string, dir: string, good: string): string {
  switch (Math.floor(i / 10) % 5) {
    case 0:
      return `{"version":1,"dataspace":"${dataspace}","n":${i},`;
    case 1:
      return JSON.stringify({ version: 1, dataspace, segmentId: `p-${i}`, source: `file://${dir}/${good}`, priority: 'high' });
    case 2:
      return JSON.stringify({ version: 1, dataspace, segmentId: `../p-${i}`, source: `file://${dir}/${good}` });
    case 3:
      return JSON.stringify({ version: 1, dataspace, segmentId: `p-${i}`, source: `file://${dir}/missing-${i}` });
    default:
      return JSON.stringify({ version: 1, dataspace, segmentId: `p-${i}`, source: `file://${dir}/${good}`, size: 1 });
  }
}
