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

export function nodeContext(kit: CoreKit, site: Site, node: string, remote: Remote = notConnected): NodeContext {
  return { site, node, remote, options: kit.options(), log: kit.log, state: new Map() };
}

export async function connect(kit: CoreKit, project: Project, node: string): Promise<Remote> {
  return kit.connect(await kit.resolveNode(node, project));
}

/**
 * Connect to the node of `ctx` as the first task of a list (shows user@host in its title). A context that
 * is connected already keeps its connection (sync-services copies into its node before loading there).
 * `guard` wraps the connection in a command's defaults (deploy: GuardedRemote).
 */
export function connectTask<C extends { node: string; remote: Remote }>(
  kit: CoreKit,
  project: Project,
  options: { title?: string; guard?: (remote: Remote) => Remote } = {},
): RunnableTask<C> {
  return {
    title: options.title ?? 'connect',
    stage: -1000,
    run: async (ctx, task) => {
      const target = ctx.remote === notConnected ? await kit.resolveNode(ctx.node, project) : ctx.remote.target;
      if (ctx.remote === notConnected) ctx.remote = await kit.connect(target);
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
  const specs = (project.site.config.nodes ?? {}) as Record<string, unknown>;
  return nodes.some((n) => {
    const spec = specs[n];
    return typeof spec === 'object' && spec !== null && !Array.isArray(spec) && Array.isArray((spec as { roles?: unknown }).roles);
  });
}
