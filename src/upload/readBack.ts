/**
 * USING_EPHEMERAL_DISKS: the ingestion node's copy may vanish once acknowledged, so the object is read back
 * (HEAD with checksum mode) and compared with what was sent before the record is acknowledged.
 */
import { IntegrityError } from '../core/errors.ts';
import type { BucketRef, S3Store } from '../core/s3Store.ts';

export interface Written {
  readonly storedSize: number;
  /** The CRC32 S3 answered the upload with, when it did. */
  readonly checksumCrc32: string | undefined;
}

/** Throws IntegrityError unless the object at `key` has the size and checksum of what was written. */
export async function verifyReadBack(store: Pick<S3Store, 'head'>, target: BucketRef, key: string, written: Written, what: string): Promise<void> {
  const where = `${what}: read back of s3://${target.bucket}/${key}`;
  const back = await store.head(target, key);
  if (back === undefined) throw new IntegrityError('size', String(written.storedSize), 'no object', where);
  if (back.size !== written.storedSize) throw new IntegrityError('size', String(written.storedSize), String(back.size), where);
  if (written.checksumCrc32 !== undefined && back.checksumCrc32 !== undefined && written.checksumCrc32 !== back.checksumCrc32) {
    throw new IntegrityError('checksum', written.checksumCrc32, back.checksumCrc32, `${where} (CRC32)`);
  }
}
