import { type Script, raw, sh } from '../shell/sh.ts';
import type { Site } from '../config/site.ts';
import type { DeployContext, HealthCheckRequest } from '../engine/context.ts';
import { type Hooks, lifecycleHooks } from '../engine/hooks.ts';

/** How to ask the site on this node, as the plugins say (the `healthcheck` extension point): plain HTTP unless one asks for HTTPS. */
export async function healthCheckRequest(hooks: Hooks, ctx: DeployContext): Promise<HealthCheckRequest> {
  const request: HealthCheckRequest = { https: false };
  await lifecycleHooks(hooks).healthcheck.promise(ctx, request);
  return request;
}

/** Request the site through the web server on the node (at `address`, default 127.0.0.1), with the canonical domain as Host header. */
export function healthCheckCommand(site: Site, options: { https?: boolean; address?: string } = {}): Script {
  const hc = site.config.healthcheck;
  if (hc === false) return raw('true');
  const statuses = hc.status === undefined ? ['2??', '3??'] : [hc.status].flat().map(String);
  // A plugin asked for HTTPS (plain HTTP only redirects there): ask over HTTPS, on this node, for the real answer.
  // -k: this checks the site, not the certificate (a self-signed or private CA one is fine here).
  const address = options.address ?? '127.0.0.1';
  const inUrl = address.includes(':') ? `[${address}]` : address;
  const request = options.https
    ? sh`--resolve ${`${site.canonicalDomain}:443:${inUrl}`} -k ${`https://${site.canonicalDomain}${hc.path}`}`
    : sh`-H ${`Host: ${site.canonicalDomain}`} ${`http://${inUrl}${hc.path}`}`;
  return sh`i=0
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time ${hc.timeout} ${request})
  case "$code" in ${raw(statuses.join('|'))}) echo "$code"; exit 0;; esac
  i=$((i+1)); if [ "$i" -gt ${hc.retries} ]; then echo "$code"; exit 1; fi
  sleep 1
done`;
}
