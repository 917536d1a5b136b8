/** The upload context of a runtime: until the S3-backed registry is wired in, the current bucket only. */
import { SingleBucketRegistry, type BucketRegistry } from '../core/bucketRegistry.ts';
import type { Runtime } from '../core/runtime.ts';
import type { UploadContext } from './uploadSegment.ts';

export function uploadContext(runtime: Runtime, registry?: BucketRegistry): UploadContext {
  return {
    config: runtime.config,
    store: runtime.store,
    keyRing: runtime.keyRing,
    registry: registry ?? new SingleBucketRegistry({ bucket: runtime.config.bucket, region: runtime.config.region }),
  };
}
