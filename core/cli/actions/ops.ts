/**
 * What the day-to-day commands (status, logs, run, env, backup, dump, load,
 * sync-services, destroy) share: picking nodes, connecting, and a NodeContext
 * for the plugins' hooks.
 */
import type { NodeContext } from '../../engine/context.ts';
import { KraftwerkError, UsageError } from '../../errors.ts';
import type { CoreKit } from '../kit.ts';
import { expandNodes } from '../../remote/node.ts';
import { DeployLock } from '../../lifecycle/lock.ts';
import type { Project } from '../../engine/plugin.ts';
import type { ReloadContext } from '../../engine/context.ts';
import { runInline, type RunnableTask } from '../../engine/runner.ts';
import { Stage, type TaskHandle } from '../../engine/tasks.ts';
import { sh } from '../../shell/sh.ts';
import type { Site } from '../../config/site.ts';
import type { Remote } from '../../remote/remote.ts';
import { syncAndRecord } from '../../remote/syncfiles.ts';
import { declaresRoles, groupTopology, soloTopology, type Topology } from '../../engine/topology.ts';

/** Stands in for the connection until core's connect task has run (taps run before it: they only add tasks). */
export const notConnected: Remote = new Proxy({} as Remote, {
  get(_t, prop) {
    if (prop === 'dryRun') return false;
    throw new Error(`not connected yet (remote.${String(prop)} used from a tap instead of a task, or before the connect task)`);
  },
});

export function nodesOf(project: Project, nodeArg: string | undefined): string[] {
  return expandNodes(nodeArg, project.site.config, project.site.configFile);
}

/**
 * A command that talks to one server, given a group split by role: the group's first node with
 * `role` (run goes to a web node). A group that declares no roles is refused as by singleNode.
 */
export async function nodeWithRole(kit: CoreKit, project: Project, nodeArg: string | undefined, command: string, role: string): Promise<string> {
  const nodes = nodesOf(project, nodeArg);
  if (nodes.length > 1) {
    const first = [...(await commandTopology(kit, project, nodes)).values()][0]!;
    const chosen = first.declared ? first.nodes.find((n) => n.roles.has(role)) : undefined;
    if (chosen) return chosen.name;
  }
  return singleNode(project, nodeArg, command);
}

/** Commands that talk to one server (run, logs -f, load, download) refuse a group. */
export function singleNode(project: Project, nodeArg: string | undefined, command: string): string {
  const nodes = nodesOf(project, nodeArg);
  if (nodes.length !== 1) {
    throw new UsageError(`${command} works on one node; ${nodeArg ?? 'the default node'} is a group of ${nodes.length} (${nodes.join(', ')})`, {
      hint: `Name one of them: kraftwerk ${command} ${nodes[0]} …`,
    });
  }
  return nodes[0]!;
}

/** `topology`: the node's place in the command's group (commandTopology); alone, it has every role. */
export function nodeContext(kit: CoreKit, site: Site, node: string, remote: Remote = notConnected, topology: Topology = soloTopology(node)): NodeContext {
  return { site, node, remote, options: kit.options(), log: kit.log, state: new Map(), topology };
}

/**
 * Each node's place in its group: the roles of every node of the group, checked against the roles
 * core and the project's plugins know, and where a node without `private_host` is reached (the
 * address its target resolves to). The group is the one the nodes belong to, not only those the
 * command names: `env set web1` must know where web1's database is.
 */
export async function commandTopology(kit: CoreKit, project: Project, nodes: readonly string[]): Promise<Map<string, Topology>> {
  const { config, configFile } = project.site;
  return groupTopology(config, homeGroup(config, nodes), project.plugins, {
    configFile,
    privateHost: async (name) => (await kit.resolveNode(name, project)).host,
  });
}

/** The group that holds every one of `nodes`: the default node's if it does, else the smallest group of `nodes:` that does, else the nodes themselves. */
function homeGroup(config: Site['config'], nodes: readonly string[]): readonly string[] {
  const holds = (group: string[]) => nodes.every((n) => group.includes(n));
  const groups = Object.entries(config.nodes)
    .filter(([, spec]) => Array.isArray(spec))
    .map(([name]) => expandNodes(name, config));
  const byDefault = config.default_node ? expandNodes(config.default_node, config) : undefined;
  if (byDefault && holds(byDefault)) return byDefault;
  return groups.filter(holds).sort((a, b) => a.length - b.length)[0] ?? nodes;
}

export async function connect(kit: CoreKit, project: Project, node: string): Promise<Remote> {
  return kit.connect(await kit.resolveNode(node, project));
}

/**
 * Connect to the node of `ctx` as the first task of a list (shows user@host in its title). A context that
 * is connected already keeps its connection (sync-services copies into its node before loading there).
 * `guard` wraps the connection in a command's defaults (deploy: GuardedRemote); `rsyncSoon`: see CoreKit.connect.
 */
export function connectTask<C extends { node: string; remote: Remote }>(
  kit: CoreKit,
  project: Project,
  options: { title?: string; guard?: (remote: Remote) => Remote; rsyncSoon?: boolean } = {},
): RunnableTask<C> {
  return {
    title: options.title ?? 'connect',
    stage: -1000,
    run: async (ctx, task) => {
      const target = ctx.remote === notConnected ? await kit.resolveNode(ctx.node, project) : ctx.remote.target;
      if (ctx.remote === notConnected) ctx.remote = await kit.connect(target, { rsyncSoon: options.rsyncSoon });
      if (options.guard) ctx.remote = options.guard(ctx.remote);
      task.title(`connect to ${ctx.node} (${target.user}@${target.host}${target.port !== 22 ? `:${target.port}` : ''})`);
    },
  };
}

/** Fails with a clear message when the site was never deployed to the node. */
export async function requireDeployed(remote: Remote, site: Site, node: string): Promise<void> {
  if (remote.dryRun) return;
  const { code } = await remote.exec(sh`test -d ${`${site.paths.current}/`}`, { check: false });
  if (code !== 0) {
    throw new KraftwerkError(`${site.name} is not deployed on ${node} (no ${site.paths.current})`, {
      hint: `Deploy it first: kraftwerk deploy ${node}`,
    });
  }
}

/**
 * Take the site's deploy lock for a command that changes the site outside a deploy (env set, load,
 * destroy): it waits up to a minute for a deploy that holds it, showing who. A dry run shows the
 * command, as it shows every other.
 */
export async function takeSiteLock(c: NodeContext, task: TaskHandle, command: string): Promise<DeployLock> {
  const { lock } = await DeployLock.acquire(c.remote, c.site.name, { command, waitMs: 60_000, node: c.node, onWait: (h) => task.output(`waiting for ${h}`) });
  return lock;
}

/** Ask before something destructive; --yes answers for scripts. */
export async function confirmOrStop(kit: CoreKit, question: string): Promise<void> {
  if (kit.options().dryRun) return;
  if (!(await kit.confirm(question))) {
    throw new UsageError('stopped: not confirmed', {
      hint: process.stdin.isTTY ? 'Nothing was changed.' : 'No terminal to ask on: add --yes to confirm. Nothing was changed.',
    });
  }
}

/**
 * Run the reload hook's tasks inside one task: the plugins' files are written
 * (in one round trip) before the first task of Stage.WRITE_FILES or later.
 * Returns the plugins that took part.
 */
export async function runReloadInline(list: RunnableTask<ReloadContext>[], ctx: ReloadContext, task: TaskHandle): Promise<string[]> {
  const beforeFiles = list.filter((t) => (t.stage ?? Stage.DEFAULT) < Stage.WRITE_FILES);
  const ran = await runInline(beforeFiles, ctx, task);
  await syncAndRecord(ctx, ctx.files.all);
  ran.push(...(await runInline(list.slice(beforeFiles.length), ctx, task)));
  return [...new Set(ran.flatMap((t) => (t.plugin ? [t.plugin] : [])))];
}

/** Whether a node of `nodes` declares `roles:` in kraftwerk.yaml (the group is split by roles). */
export function groupDeclaresRoles(project: Project, nodes: readonly string[]): boolean {
  return declaresRoles(project.site.config, nodes);
}
