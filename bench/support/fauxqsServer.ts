/**
 * Child of the peers bench: the embedded server (fauxqs, S3 in memory) in a process of its own, so that its
 * CPU is never counted as a client's. argv: bucket names to create. Prints one JSON line {"port": N} once it
 * listens, and stops on SIGTERM.
 *
 * Two narrow fixes of fauxqs 1.9, for the bench only:
 * - it listens on 0.0.0.0 whatever it is told; the bench binds local servers to 127.0.0.1 only;
 * - its CompleteMultipartUpload parser unescapes &quot; but not &#34;, which is how Go's XML encoder (rclone)
 *   writes the quotes of each part's ETag: every rclone multipart upload failed with InvalidPart.
 */
import { Server } from 'node:net';
import { startFauxqs } from 'fauxqs';
// Not in the package's exports: esbuild resolves the file, the same module instance fauxqs itself uses.
import { S3Store } from '../../node_modules/fauxqs/dist/s3/s3Store.js';

const listen = Server.prototype.listen;
Server.prototype.listen = function (this: Server, ...args: unknown[]) {
  const [first] = args;
  if (typeof first === 'object' && first !== null && 'host' in first) args[0] = { ...first, host: '127.0.0.1' };
  return Reflect.apply(listen, this, args) as Server;
} as typeof Server.prototype.listen;

type PartSpec = { partNumber: number; etag: string };
const complete = S3Store.prototype.completeMultipartUpload;
S3Store.prototype.completeMultipartUpload = function (this: S3Store, uploadId: string, parts: PartSpec[]) {
  return complete.call(this, uploadId, parts.map((p) => ({ ...p, etag: p.etag.replaceAll('&#34;', '"') })));
};

const server = await startFauxqs({ port: 0, logger: false, defaultRegion: 'us-east-1' });
for (const bucket of process.argv.slice(2)) server.createBucket(bucket);
console.log(JSON.stringify({ port: server.port }));
process.once('SIGTERM', () => void server.stop().then(() => process.exit(0)));
