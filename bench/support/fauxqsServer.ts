/**
 * Child of the peers bench: the embedded server (fauxqs, S3 in memory) in a process of its own, so that its
 * CPU is never counted as a client's. argv: bucket names to create. Prints one JSON line {"port": N} once it
 * listens, and stops on SIGTERM.
 *
 * Two narrow fixes of fauxqs 1.9, for the bench only:
 * - it listens on 0.0.0.0 whatever it is told; the bench binds local servers to 127.0.0.1 only;
 * - its CompleteMultipartUpload parser expects every <Part> to list its children in one order and does not
 *   unescape &#34;, while Go's XML encoder (rclone) writes PartNumber and ETag in either order and the ETag's
 *   quotes as &#34;: rclone's multipart uploads failed (InvalidPart, or an object of a few parts). The body
 *   is normalised before fauxqs's handler runs, through fastify's documented diagnostics channel.
 */
import { subscribe } from 'node:diagnostics_channel';
import { Server } from 'node:net';
import { startFauxqs } from 'fauxqs';

/** Each <Part> as <PartNumber>N</PartNumber><ETag>E</ETag>, whatever order and escaping it came in. */
function normaliseParts(xml: string): string {
  return xml.replace(/<Part>([\s\S]*?)<\/Part>/g, (part, inner: string) => {
    const number = /<PartNumber>(\d+)<\/PartNumber>/.exec(inner)?.[1];
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(inner)?.[1];
    return number === undefined || etag === undefined ? part : `<Part><PartNumber>${number}</PartNumber><ETag>${etag.replaceAll('&#34;', '&quot;')}</ETag></Part>`;
  });
}

subscribe('tracing:fastify.request.handler:start', (message) => {
  const request = typeof message === 'object' && message !== null && 'request' in message ? message.request : undefined;
  if (typeof request !== 'object' || request === null || !('body' in request) || !Buffer.isBuffer(request.body)) return;
  const text = request.body.subarray(0, 256).toString('utf8');
  if (!text.includes('<CompleteMultipartUpload')) return;
  request.body = Buffer.from(normaliseParts(request.body.toString('utf8')), 'utf8');
});

const listen = Server.prototype.listen;
Server.prototype.listen = function (this: Server, ...args: unknown[]) {
  const [first] = args;
  if (typeof first === 'object' && first !== null && 'host' in first) args[0] = { ...first, host: '127.0.0.1' };
  return Reflect.apply(listen, this, args) as Server;
} as typeof Server.prototype.listen;

const server = await startFauxqs({ port: 0, logger: false, defaultRegion: 'us-east-1' });
for (const bucket of process.argv.slice(2)) server.createBucket(bucket);
console.log(JSON.stringify({ port: server.port }));
process.once('SIGTERM', () => void server.stop().then(() => process.exit(0)));
