/**
 * The HTTP agents of the AWS clients when a proxy is configured (config.proxy): requests are tunnelled through
 * the proxy with CONNECT (https-proxy-agent), except for hosts that NO_PROXY names and loopback addresses, which
 * are reached directly with the plain keep-alive agent. Without a proxy the plain agents are used as they are.
 */
import { Agent, type AgentConnectOpts } from 'agent-base';
import type { Agent as HttpAgent, AgentOptions, ClientRequest } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import type { ProxySettings } from './config.ts';

/** True for host names NO_PROXY names (`*`, `host`, `.domain` or `domain` for its subdomains too, `host:port`). */
export function bypassesProxy(host: string, port: number | undefined, noProxy: readonly string[]): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (name === 'localhost' || name.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(name) || name === '::1') return true;
  return noProxy.some((entry) => {
    if (entry === '*') return true;
    const [entryHost = '', entryPort] = entry.split(/:(?=\d+$)/);
    if (entryPort !== undefined && Number(entryPort) !== port) return false;
    const domain = entryHost.replace(/^\*?\./, '');
    return name === domain || name.endsWith(`.${domain}`);
  });
}

/** Hands each request to the proxy agent, or to the direct agent for the hosts NO_PROXY names. */
class RoutingAgent extends Agent {
  constructor(
    private readonly proxy: HttpAgent,
    private readonly direct: HttpAgent,
    private readonly noProxy: readonly string[],
  ) {
    super();
  }

  // agent-base lets connect() answer with another agent: the request then goes through that one.
  connect(_req: ClientRequest, opts: AgentConnectOpts): HttpAgent {
    return bypassesProxy(opts.host ?? '', opts.port, this.noProxy) ? this.direct : this.proxy;
  }
}

/**
 * The agent for one scheme: `direct` itself without a proxy for that scheme, else a proxy agent that falls
 * back on `direct` for NO_PROXY hosts.
 */
export function proxiedAgent(scheme: 'http' | 'https', proxy: ProxySettings | undefined, direct: HttpAgent, options: AgentOptions): HttpAgent {
  const url = proxy?.[scheme];
  if (proxy === undefined || url === undefined) return direct;
  return new RoutingAgent(new HttpsProxyAgent(url.reveal(), options), direct, proxy.noProxy);
}
