/**
 * The load balancer (`lb` role, issue 16): nginx on the lb node passes the site's requests to the
 * web nodes' nginx on their private addresses (an upstream with passive health checks and
 * keepalive; TLS, aliases and redirects end here). It is on whenever a group has a node with the
 * `lb` role (and not `web`): no `services:` entry. The site file itself is the nginx plugin's
 * (plugins/nginx renders each node's place, plugins/lb/topology.ts says which): the same path,
 * test and reload as on a web node, so status, logs, destroy and certificates work unchanged.
 *
 * What this plugin adds is the rolling deploy's drain (core's `traffic` extension point): before a
 * web node switches, the lb's site file marks it `down` and nginx reloads gracefully (old workers
 * finish their requests); after its health check it is put back the same way.
 *
 * On the lb node: /etc/nginx/sites-available/kraftwerk-<site>.conf (root's, 0644: nginx's master
 * reads it as root; no site user exists there to write it).
 */
import { type DeployContext, definePlugin, type Hooks, lifecycleHooks, type Site, sh } from '../../core/index.ts';
import { rerenderSite } from '../nginx/index.ts';
import { DRAINED_STATE, isLoadBalancer, webNodes } from './topology.ts';

const NAME = 'lb';

/**
 * After a graceful reload, the old workers finish the requests they have (some on the node just
 * drained) and exit: wait for them, at most 10 s (a long download keeps its worker; it may finish
 * on the old release, which stops only once the node switched).
 */
export const OLD_WORKERS_GONE = sh`i=0
while pgrep -f 'nginx: worker process is shutting down' >/dev/null 2>&1 && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done`;

/** Mark `node` drained or not in the lb's upstream and make nginx run with it (a graceful reload, then the old workers gone). */
async function setDrained(lb: DeployContext, site: Site, node: string, down: boolean): Promise<void> {
  const drained = new Set((lb.state.get(DRAINED_STATE) as Set<string> | undefined) ?? []);
  if (down) drained.add(node);
  else drained.delete(node);
  lb.state.set(DRAINED_STATE, drained);
  await rerenderSite(lb, site, { why: `with ${node} ${down ? 'drained' : 'back'}`, after: OLD_WORKERS_GONE });
}

export default definePlugin({
  name: NAME,
  description: 'load balancer: nginx on the lb node in front of the web nodes; drains each web node during a rolling deploy',
  // No runsOn: core refuses a plugin whose role no node of a group has, and this one is on for every
  // site; it only acts on a load balancer's context (isLoadBalancer).
  apply(hooks: Hooks, site: Site) {
    // On the load balancer's own context: it balances the group's web nodes, from its own connection.
    lifecycleHooks(hooks).traffic.tap(NAME, (ctx, traffic) => {
      if (!isLoadBalancer(ctx)) return;
      traffic.balance(
        webNodes(ctx).map((n) => n.name),
        {
          drain: (node) => setDrained(ctx, site, node.node, true),
          undrain: (node) => setDrained(ctx, site, node.node, false),
        },
      );
    });
  },
});
