import type { Config, NodeSpec } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';

/**
 * Node roles: which part of a site each node of a group runs (issue 16). A role is a
 * name that plugins define (`Plugin.roles`) and consult (`hasRole`, `nodesWithRole`);
 * a plugin says on which roles' nodes its tasks run (`Plugin.runsOn`). Core defines
 * the roles every stack has in some form; the stack's plugins define their own.
 */
export interface RoleSpec {
  readonly name: string;
  /** One line for error messages and `kraftwerk plugins`. */
  readonly description: string;
  /** A role that contains this one: a node with `partOf` has this role too (postgres in db). */
  readonly partOf?: string;
  /** At most one node of a group has it (a job must not run twice). */
  readonly single?: boolean;
  /**
   * Where the role goes in a group that declares roles but gives it to no node: the first
   * node with the first of these roles that one has (e.g. the first worker, else the first web node).
   * A role without it, which no node has, runs nowhere (and a plugin that runs on it is refused).
   */
  readonly defaultOn?: readonly string[];
  /** Nodes with this role serve the others (a database): they are made ready before the others start. */
  readonly first?: boolean;
}

/** The roles core defines: what any site has in some form, whatever serves it. */
export const CORE_ROLES: readonly RoleSpec[] = [
  { name: 'web', description: 'serves the site (its web server and app server)' },
  { name: 'worker', description: "runs the site's background processes", defaultOn: ['web'] },
  { name: 'lb', description: 'load balancer in front of the web nodes' },
  { name: 'db', description: "the site's data services" },
];

/** One node of a command's group, as the plugins see it. */
export interface TopologyNode {
  /** The node's name (a key of `nodes:`, a sandbox or a host). */
  readonly name: string;
  readonly roles: ReadonlySet<string>;
  /** The address other nodes of the group reach it at (`private_host`, else its `host` resolved). */
  readonly privateHost: string;
}

/** The group a command runs on, from one node's point of view. */
export interface Topology {
  /** This node's roles: every role when no node of the group declares any. */
  readonly roles: ReadonlySet<string>;
  /** Every node of the command's group, in order. */
  readonly nodes: readonly TopologyNode[];
  /** Some node of the group declares `roles`: the group is split by role. */
  readonly declared: boolean;
  /** One map for all nodes of a command: values one node's tasks pass to another's (in memory only). */
  readonly shared: Map<string, unknown>;
}

/** Something that knows its node's place in the group: every context does. */
export interface HasTopology {
  readonly topology: Topology;
}

/** Does this node have `role`? */
export function hasRole(ctx: HasTopology, role: string): boolean {
  return ctx.topology.roles.has(role);
}

/** The nodes of the group that have `role`, in order. */
export function nodesWithRole(ctx: HasTopology, role: string): TopologyNode[] {
  return ctx.topology.nodes.filter((n) => n.roles.has(role));
}

/** A plugin's tasks run on this node: it names no roles, or the node has one of them. */
export function runsHere(runsOn: readonly string[] | undefined, ctx: HasTopology): boolean {
  return !runsOn?.length || runsOn.some((r) => ctx.topology.roles.has(r));
}

/** What a plugin tells of roles (the part of Plugin this module reads). */
interface RolePlugin {
  readonly name: string;
  readonly roles?: readonly RoleSpec[];
  readonly runsOn?: readonly string[];
}

/** Every role core and the plugins define, by name. */
export function knownRoles(plugins: readonly RolePlugin[]): Map<string, RoleSpec & { plugin: string }> {
  const out = new Map<string, RoleSpec & { plugin: string }>();
  for (const r of CORE_ROLES) out.set(r.name, { ...r, plugin: 'core' });
  for (const p of plugins) for (const r of p.roles ?? []) if (!out.has(r.name)) out.set(r.name, { ...r, plugin: p.name });
  return out;
}

/** A single server's spec (not a group), or undefined for a name `nodes:` does not list. */
function serverSpec(config: Config | undefined, name: string): Exclude<NodeSpec, string[]> | undefined {
  const spec = config?.nodes[name];
  return Array.isArray(spec) ? undefined : spec;
}

/** The `roles:` a node declares, or undefined. */
function declaredRoles(config: Config | undefined, name: string): string[] | undefined {
  const spec = serverSpec(config, name);
  return typeof spec === 'object' ? spec.roles : undefined;
}

/** Some node of `nodes` declares `roles:` in kraftwerk.yaml: the group is split by role. */
export function declaresRoles(config: Config | undefined, nodes: readonly string[]): boolean {
  return nodes.some((n) => declaredRoles(config, n) !== undefined);
}

/**
 * The roles of each node of `nodes` (the expanded group of a command), checked: every role is
 * known; a group split by role has a `web` node, at most one node with a `single` role (which
 * goes to its default node when none has it), and a node with the role of each enabled
 * plugin that needs one. A group where no node declares roles: every node has every role.
 */
export function groupRoles(
  config: Config | undefined,
  nodes: readonly string[],
  plugins: readonly RolePlugin[],
  configFile = 'kraftwerk.yaml',
): { declared: boolean; roles: Map<string, Set<string>> } {
  const known = knownRoles(plugins);
  const all = new Set(known.keys());
  const declared = declaresRoles(config, nodes);
  const roles = new Map<string, Set<string>>();
  if (!declared) {
    for (const n of nodes) roles.set(n, new Set(all));
    return { declared, roles };
  }
  for (const n of nodes) {
    const given = declaredRoles(config, n);
    if (!given) {
      roles.set(n, new Set(all));
      continue;
    }
    const set = new Set<string>();
    for (const r of given) {
      if (!known.has(r)) {
        throw new ConfigError(configFile, `nodes.${n}.roles`, `unknown role "${r}"`, {
          hint: `Known roles: ${[...known.values()].map((k) => `${k.name} (${k.description})`).join(', ')}.`,
        });
      }
      set.add(r);
      // A group role brings the roles that are part of it (db: the data services).
      for (const k of known.values()) if (k.partOf === r) set.add(k.name);
    }
    roles.set(n, set);
  }
  const listed = (role: string) => nodes.filter((n) => roles.get(n)!.has(role));
  if (!listed('web').length) {
    throw new ConfigError(configFile, 'nodes', `the group ${nodes.join(', ')} has no node with the role web`, {
      hint: 'Give at least one node `roles: [web]`: a site needs a node that serves it.',
    });
  }
  for (const spec of known.values()) {
    if (!spec.single) {
      const to = !listed(spec.name).length && defaultNode(spec, nodes, roles);
      if (to) roles.get(to)!.add(spec.name);
      continue;
    }
    const explicit = nodes.filter((n) => declaredRoles(config, n)?.includes(spec.name));
    const having = listed(spec.name);
    if (explicit.length > 1) {
      throw new ConfigError(configFile, `nodes.${explicit[1]}.roles`, `the role ${spec.name} is on ${explicit.join(' and ')}: at most one node may have it (${spec.description})`, {
        hint: `Keep ${spec.name} on one node.`,
      });
    }
    // Nodes that got it implicitly (no roles of their own) lose it once another node has it.
    const keep = explicit[0] ?? having.find((n) => !declaredRoles(config, n)) ?? defaultNode(spec, nodes, roles);
    for (const n of having) if (n !== keep) roles.get(n)!.delete(spec.name);
    if (keep) roles.get(keep)!.add(spec.name);
  }
  for (const p of plugins) {
    if (!p.runsOn?.length) continue;
    if (!p.runsOn.some((r) => listed(r).length)) {
      throw new ConfigError(configFile, 'nodes', `the plugin ${p.name} needs a node with the role ${p.runsOn.join(' or ')} in the group ${nodes.join(', ')}`, {
        hint: `Add ${p.runsOn[0]} to the roles of a node, or remove ${p.name} from services:.`,
      });
    }
  }
  return { declared, roles };
}

function defaultNode(spec: RoleSpec, nodes: readonly string[], roles: Map<string, Set<string>>): string | undefined {
  for (const r of spec.defaultOn ?? []) {
    const n = nodes.find((x) => roles.get(x)!.has(r));
    if (n) return n;
  }
  return undefined;
}

/** The roles of a node that has them all, where the list of known roles is not at hand: asks answer yes. */
class EveryRole extends Set<string> {
  override has(): boolean {
    return true;
  }
}

/** A one-node command outside any group (or before the group is known): the node has every role. */
export function soloTopology(node: string, privateHost = node): Topology {
  const roles = new EveryRole();
  return { roles, nodes: [{ name: node, roles, privateHost }], declared: false, shared: new Map() };
}

/**
 * The topology of each node of a group: the checked roles, and where the others reach each node.
 * `privateHost(name)` gives the address a node is reached at when it has no `private_host`.
 */
export async function groupTopology(
  config: Config | undefined,
  nodes: readonly string[],
  plugins: readonly RolePlugin[],
  options: { configFile?: string; privateHost: (name: string) => Promise<string> },
): Promise<Map<string, Topology>> {
  const { declared, roles } = groupRoles(config, nodes, plugins, options.configFile);
  const members: TopologyNode[] = await Promise.all(
    nodes.map(async (name) => {
      const spec = serverSpec(config, name);
      const given = typeof spec === 'object' ? spec.private_host : undefined;
      // Only a group split by role sends traffic between its nodes: resolve addresses only then.
      const privateHost = given ?? (declared ? await options.privateHost(name) : name);
      return { name, roles: roles.get(name)!, privateHost };
    }),
  );
  const shared = new Map<string, unknown>();
  return new Map(members.map((m) => [m.name, { roles: m.roles, nodes: members, declared, shared }]));
}

/** Where each plugin's taps run, by its name (for interceptHooks). */
export function placementOf(plugins: readonly RolePlugin[]): (plugin: string) => readonly string[] | undefined {
  const byName = new Map(plugins.map((p) => [p.name, p.runsOn]));
  return (plugin) => byName.get(plugin);
}
