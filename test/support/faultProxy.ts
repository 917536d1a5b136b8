/**
 * A fault-injecting HTTP proxy between the SDK clients and the local S3/SQS server, for the chaos suite.
 * It forwards every request to `target`, and for a chosen share of chosen operations answers instead with
 * 500 InternalError or 503 SlowDown, resets the connection mid-body, stalls, or cuts the response short.
 * Deterministic for a given seed, bounded (faults stop after `maxFaults`), and it counts what it did.
 *
 * Written on node:http rather than a proxy library: the faults need the raw socket (reset, cut short),
 * which the maintained proxy libraries hide.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultKind = 'status500' | 'slowDown503' | 'resetMidBody' | 'stall' | 'cutShort';

export interface FaultRule {
  /** Which requests may be hit: method and a test on the path+query. */
  readonly match: (method: string, url: string) => boolean;
  readonly kinds: readonly FaultKind[];
  /** Share of matching requests that get a fault, 0..1. */
  readonly rate: number;
}

export interface FaultProxyOptions {
  readonly target: string;
  readonly rules: readonly FaultRule[];
  readonly seed?: number;
  readonly stallMs?: number;
  readonly maxFaults?: number;
}

export interface FaultProxy {
  readonly endpoint: string;
  readonly counts: Readonly<Record<FaultKind | 'forwarded', number>>;
  /** Turns faults off (e.g. to verify the end state) or back on. */
  setEnabled(enabled: boolean): void;
  stop(): Promise<void>;
}

/** A small deterministic PRNG (mulberry32) so a failing chaos run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const S3_ERROR = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault</RequestId></Error>`;

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = prng(options.seed ?? 1);
  const counts: Record<FaultKind | 'forwarded', number> = { status500: 0, slowDown503: 0, resetMidBody: 0, stall: 0, cutShort: 0, forwarded: 0 };
  const maxFaults = options.maxFaults ?? Number.POSITIVE_INFINITY;
  let faults = 0;
  let enabled = true;

  const pickFault = (method: string, url: string): FaultKind | undefined => {
    if (!enabled || faults >= maxFaults) return undefined;
    for (const rule of options.rules) {
      if (!rule.match(method, url)) continue;
      if (random() >= rule.rate) return undefined;
      const kind = rule.kinds[Math.floor(random() * rule.kinds.length)];
      if (kind !== undefined) faults++;
      return kind;
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: FaultKind | undefined) => {
    counts.forwarded++;
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (fault === 'resetMidBody' || fault === 'cutShort') {
          const length = Number(up.headers['content-length'] ?? 0);
          let sent = 0;
          const limit = Math.floor(length / 2);
          up.on('data', (chunk: Buffer) => {
            if (sent >= limit) return;
            const part = chunk.subarray(0, Math.max(0, limit - sent));
            sent += part.length;
            res.write(part);
            if (sent >= limit) {
              up.destroy();
              // reset: RST to the client; cut short: a clean FIN before Content-Length bytes arrived.
              if (fault === 'resetMidBody') res.socket?.resetAndDestroy();
              else res.socket?.end();
            }
          });
          up.on('end', () => {
            if (fault === 'resetMidBody') res.socket?.resetAndDestroy();
            else res.socket?.end();
          });
          return;
        }
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  };

  const server: Server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const fault = pickFault(method, url);
    if (fault !== undefined) counts[fault]++;
    switch (fault) {
      case 'status500':
      case 'slowDown503': {
        // Drain the request first so the client sees the answer, as S3 would send it.
        req.resume();
        req.on('end', () => {
          const body = fault === 'status500' ? S3_ERROR('InternalError', 'injected fault') : S3_ERROR('SlowDown', 'Please reduce your request rate.');
          res.writeHead(fault === 'status500' ? 500 : 503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
        return;
      }
      case 'stall':
        setTimeout(() => forward(req, res, undefined), options.stallMs ?? 2_000);
        return;
      default:
        forward(req, res, fault);
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    setEnabled(value) {
      enabled = value;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
