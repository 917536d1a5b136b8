/**
 * A fault-injecting HTTP proxy between the SDK clients and a local S3/SQS server, for the chaos suite and the
 * tests of failure paths. It forwards every request to `target`, and for a chosen share of chosen operations
 * answers instead with an S3 error (500 InternalError, 503 SlowDown, 403 AccessDenied, 412 PreconditionFailed),
 * resets the connection mid-body, stalls, cuts the response short, or forwards the request and then loses the
 * answer (the server did the work, the client sees a 500). Deterministic for a given seed, bounded (faults stop
 * after `maxFaults`), and it counts what it did and logs every request it saw.
 *
 * A stall holds the request for `stallMs` before forwarding it. Give it a `stallMs` longer than the client's
 * request timeout and the client gives up first: the proxy then never forwards it and counts a
 * `stallAbandoned` (observed: the client closed the connection while the request was held).
 *
 * Written on node:http rather than a proxy library: the faults need the raw socket (reset, cut short),
 * which the maintained proxy libraries hide.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultKind = 'status500' | 'slowDown503' | 'status403' | 'status412' | 'resetMidBody' | 'stall' | 'cutShort' | 'answerLost';

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

/** One request as the proxy saw it. */
export interface ProxiedRequest {
  readonly method: string;
  readonly url: string;
  readonly range: string | undefined;
  readonly fault: FaultKind | undefined;
  /** ms since the proxy started. */
  readonly startedAt: number;
  /** ms since the proxy started when the answer ended or the connection closed; undefined while in flight. */
  endedAt: number | undefined;
  /** The status the client was sent (undefined: no answer, e.g. a reset before the headers). */
  status: number | undefined;
  /** For CreateMultipartUpload answers: the upload id the server gave. */
  uploadId: string | undefined;
}

export type ProxyCounts = Record<FaultKind | 'forwarded' | 'stallAbandoned', number>;

export interface FaultProxy {
  readonly endpoint: string;
  readonly counts: Readonly<ProxyCounts>;
  /** Every request seen, in arrival order. */
  readonly log: readonly ProxiedRequest[];
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

const ANSWERS: Partial<Record<FaultKind, { status: number; code: string; message: string }>> = {
  status500: { status: 500, code: 'InternalError', message: 'injected fault' },
  answerLost: { status: 500, code: 'InternalError', message: 'injected fault: the request was done, its answer lost' },
  slowDown503: { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
  status403: { status: 403, code: 'AccessDenied', message: 'Access Denied (injected)' },
  status412: { status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold (injected)' },
};

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = prng(options.seed ?? 1);
  const counts: ProxyCounts = { status500: 0, slowDown503: 0, status403: 0, status412: 0, resetMidBody: 0, stall: 0, cutShort: 0, answerLost: 0, forwarded: 0, stallAbandoned: 0 };
  const log: ProxiedRequest[] = [];
  const started = performance.now();
  const now = () => performance.now() - started;
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

  const answerError = (req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, kind: FaultKind) => {
    const answer = ANSWERS[kind];
    if (answer === undefined) return;
    const body = S3_ERROR(answer.code, answer.message);
    entry.status = answer.status;
    res.writeHead(answer.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, body?: Buffer) => {
    counts.forwarded++;
    const fault = entry.fault;
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (fault === 'answerLost') {
          // The server did the work; its answer is thrown away and the client sees a 500.
          up.resume();
          up.on('end', () => answerError(req, res, entry, 'answerLost'));
          return;
        }
        entry.status = up.statusCode;
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
              // reset: RST to the client; cut short: a clean FIN before Content-Length bytes arrived. A short
              // pause first, so the client has taken the answer's head and reads the body when it breaks.
              setTimeout(() => {
                if (fault === 'resetMidBody') res.socket?.resetAndDestroy();
                else res.socket?.end();
              }, 25);
            }
          });
          up.on('end', () => {
            if (fault === 'resetMidBody') res.socket?.resetAndDestroy();
            else res.socket?.end();
          });
          return;
        }
        if (req.method === 'POST' && /[?&]uploads(=|&|$)/.test(req.url ?? '')) {
          // CreateMultipartUpload: note the upload id (small XML answer).
          let text = '';
          up.on('data', (c: Buffer) => (text += c.toString('utf8')));
          up.on('end', () => (entry.uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(text)?.[1]));
        }
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    // A client that goes away (killed, timed out) takes its upstream request with it.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    if (body === undefined) req.pipe(upstream);
    else upstream.end(body);
  };

  const server: Server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const fault = pickFault(method, url);
    const range = req.headers.range;
    const entry: ProxiedRequest = { method, url, range: typeof range === 'string' ? range : undefined, fault, startedAt: now(), endedAt: undefined, status: undefined, uploadId: undefined };
    log.push(entry);
    res.on('close', () => (entry.endedAt = now()));
    if (fault !== undefined) counts[fault]++;
    switch (fault) {
      case 'status500':
      case 'slowDown503':
      case 'status403':
      case 'status412':
        // Drain the request first so the client sees the answer, as S3 would send it.
        req.resume();
        req.on('end', () => answerError(req, res, entry, fault));
        return;
      case 'stall': {
        // The body is read while the request is held, so a client that gives up is seen at once (its FIN).
        const body: Buffer[] = [];
        let ended = false;
        let held = true;
        let gone = false;
        const go = () => {
          if (!ended || held || gone) return;
          res.off('close', abandoned);
          forward(req, res, entry, Buffer.concat(body));
        };
        const abandoned = () => {
          gone = true;
          clearTimeout(timer);
          if (held) counts.stallAbandoned++;
        };
        req.on('data', (c: Buffer) => body.push(c));
        req.on('end', () => ((ended = true), go()));
        const timer = setTimeout(() => ((held = false), go()), options.stallMs ?? 2_000);
        res.once('close', abandoned);
        return;
      }
      default:
        forward(req, res, entry);
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    log,
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
