/** The upload context of a runtime: pass the registry so "already stored?" looks in every bucket ever used. */
import type { BucketRegistry } from '../core/bucketRegistry.ts';
import { segmentContext, type Runtime } from '../core/runtime.ts';
import type { UploadContext } from './uploadSegment.ts';

export function uploadContext(runtime: Runtime, registry?: BucketRegistry): UploadContext {
  return segmentContext(runtime, registry);
}
