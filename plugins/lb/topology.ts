/**
 * Where a node stands in a group with a load balancer: the contract between the lb plugin
 * (which balances and drains), the nginx plugin (which renders the site file of each place)
 * and the tls plugin (whose certificate lives where clients arrive). Pure; imports no plugin.
 *
 * A load balancer is a node with the `lb` role and without `web` (a node that declares no roles
 * has every role: it serves the site itself, as a single server does). Without a load balancer
 * in the group, every answer here is "as before".
 */
import type { Topology, TopologyNode } from '../../core/index.ts';

interface Placed {
  readonly node: string;
  readonly topology: Topology;
  readonly state: Map<string, unknown>;
}

/** On the load balancer's context: the web nodes a rolling deploy took out of the upstream (plugins/lb). */
export const DRAINED_STATE = 'lb.drained';

/** The site file's place on this node (plugins/nginx renders it). Undefined: no load balancer, a node as always. */
export interface SiteLayout {
  /** A web node behind the load balancer: listens on its private address only, trusts X-Forwarded-For from these only. */
  behind?: { listen: readonly string[]; loadBalancers: readonly string[] };
  /** The load balancer: passes every request to the web nodes (port 80 of their nginx), the `down` ones drained. */
  proxy?: { servers: readonly { address: string; down?: boolean }[] };
}

const isBalancer = (n: TopologyNode) => n.roles.has('lb') && !n.roles.has('web');

/** The group's load balancers (none when no node declares roles). */
export function loadBalancers(ctx: Placed): TopologyNode[] {
  return ctx.topology.declared ? ctx.topology.nodes.filter(isBalancer) : [];
}

/** The web nodes of the group, in the group's order. */
export function webNodes(ctx: Placed): TopologyNode[] {
  return ctx.topology.nodes.filter((n) => n.roles.has('web'));
}

function self(ctx: Placed): TopologyNode | undefined {
  return ctx.topology.nodes.find((n) => n.name === ctx.node);
}

export function isLoadBalancer(ctx: Placed): boolean {
  const me = self(ctx);
  return Boolean(me && ctx.topology.declared && isBalancer(me));
}

/** Clients arrive here (TLS ends here, certbot runs here): the load balancers when the group has one, else the web nodes. */
export function facesClients(ctx: Placed): boolean {
  return loadBalancers(ctx).length ? isLoadBalancer(ctx) : ctx.topology.roles.has('web');
}

/** The site file's place on this node (with the web nodes a rolling deploy drained, on the load balancer). */
export function siteLayout(ctx: Placed): SiteLayout | undefined {
  const drained = (ctx.state.get(DRAINED_STATE) as ReadonlySet<string> | undefined) ?? new Set<string>();
  const balancers = loadBalancers(ctx);
  if (!balancers.length) return undefined;
  if (isLoadBalancer(ctx)) return { proxy: { servers: webNodes(ctx).map((n) => ({ address: n.privateHost, down: drained.has(n.name) })) } };
  const me = self(ctx);
  if (!me || !me.roles.has('web')) return undefined;
  return { behind: { listen: [me.privateHost], loadBalancers: balancers.map((n) => n.privateHost) } };
}
