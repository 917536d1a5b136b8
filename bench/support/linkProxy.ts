/**
 * Child of the peers bench (BENCH_LINK_MIBPS): a TCP proxy in front of a local server that lets each connection
 * carry at most N MiB/s each way, as a network path bounds one TCP stream where a local server does not. Clients
 * that spread a transfer over several connections then gain from it, as they would against a remote store;
 * one stream does not. argv: target port, MiB/s per connection. Prints one JSON line {"port": N} once it
 * listens, and stops on SIGTERM.
 *
 * Each direction of each connection is a leaky bucket: a chunk is passed on at once, and the source is paused
 * until the bytes so far would have crossed at the rate. Idle time earns no credit, so a kept-alive connection
 * never bursts above the rate.
 */
import { connect, createServer, type Socket } from 'node:net';

const targetPort = Number(process.argv[2]);
const mibps = Number(process.argv[3]);
if (!Number.isInteger(targetPort) || !(mibps > 0)) throw new Error('usage: linkProxy <target port> <MiB/s per connection>');
const bytesPerMs = (mibps * 2 ** 20) / 1000;

function throttle(from: Socket, to: Socket): void {
  let due = 0; // when the bytes passed on so far have crossed the link, in ms of performance.now()
  let waiting = false;
  let draining = false;
  const resume = () => {
    if (!waiting && !draining) from.resume();
  };
  from.on('data', (chunk: Buffer) => {
    const now = performance.now();
    due = Math.max(due, now) + chunk.length / bytesPerMs;
    if (!to.write(chunk)) {
      draining = true;
      from.pause();
      to.once('drain', () => {
        draining = false;
        resume();
      });
    }
    if (due - now > 1) {
      waiting = true;
      from.pause();
      setTimeout(() => {
        waiting = false;
        resume();
      }, due - now);
    }
  });
  from.on('end', () => to.end());
}

const server = createServer((client) => {
  const upstream = connect(targetPort, '127.0.0.1');
  // An error on either side ends both; a clean end is passed on by throttle(), after the last byte.
  const fail = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', fail);
  upstream.on('error', fail);
  throttle(client, upstream);
  throttle(upstream, client);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }));
});
process.once('SIGTERM', () => process.exit(0));
