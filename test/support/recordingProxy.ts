/**
 * A forward HTTP proxy on 127.0.0.1 that records what passes: CONNECT tunnels (the target host:port and the
 * Proxy-Authorization header) and, inside tunnels to plain-HTTP targets, each request line and Host header.
 * Hosts under `resolveToLoopback` (e.g. `.objects.test`, which no DNS knows) are dialled on 127.0.0.1, so a
 * client can address buckets by host name against a local server.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

export interface Tunnel {
  readonly target: string;
  readonly proxyAuthorization: string | undefined;
}

export interface RecordingProxy {
  readonly port: number;
  readonly tunnels: Tunnel[];
  /** "METHOD path" and Host of every HTTP request seen inside tunnels. */
  readonly requests: { readonly line: string; readonly host: string }[];
  stop(): Promise<void>;
}

export async function startRecordingProxy(resolveToLoopback: string): Promise<RecordingProxy> {
  const tunnels: Tunnel[] = [];
  const requests: { line: string; host: string }[] = [];
  const sockets = new Set<{ destroy(): void }>();
  const server: Server = createServer((_req, res) => res.writeHead(405).end('CONNECT only'));
  server.on('connect', (req, client, head) => {
    sockets.add(client);
    const target = req.url ?? '';
    tunnels.push({ target, proxyAuthorization: req.headers['proxy-authorization'] });
    const [host = '', port = '80'] = target.split(/:(?=\d+$)/);
    const upstream = connect(Number(port), host.endsWith(resolveToLoopback) ? '127.0.0.1' : host, () => {
      sockets.add(upstream);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    client.on('data', (chunk: Buffer) => {
      // Request heads of plain HTTP inside the tunnel (bodies rarely start with a method and a slash).
      for (const m of chunk.toString('latin1').matchAll(/^([A-Z]+ \/\S*) HTTP\/1\.1\r\n(?:[^\r\n]+\r\n)*?host: ([^\r\n]+)\r\n/gim)) {
        requests.push({ line: m[1] ?? '', host: m[2] ?? '' });
      }
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    tunnels,
    requests,
    stop: () => new Promise<void>((resolve) => {
      // Tunnels are upgraded sockets, which the server no longer tracks: end them here.
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
