import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { type DeployContext, type NodeFacts, RemoteFileSet } from '../context.ts';
import { collectTasks, createHooks, deployPhases, interceptHooks } from '../hooks.ts';
import type { CoreKit } from '../kit.ts';
import { expandNodes } from '../node.ts';
import type { Project } from '../plugin.ts';
import { corePlugin, releaseLock } from '../releases.ts';
import { UsageError } from '../errors.ts';
import type { RunnableTask, TaskGroup } from '../runner.ts';
import type { Remote } from '../transport/remote.ts';

export interface DeployCommandOptions {
  upgradePackages?: boolean;
  /** e.g. "90s", "5m", "0" */
  lockWait?: string;
}

/** Parse a duration such as 30, 30s, 5m, 1h into ms. */
export function parseDuration(value: string | undefined, key = '--lock-wait'): number {
  if (value === undefined || value === '') return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new UsageError(`${key}: expected a duration such as 30s, 5m or 1h, found "${value}"`);
  const n = Number(m[1]);
  return n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const)[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

/** Sortable, readable release id: UTC time to the second. */
export function newReleaseId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function gitRevision(dir: string): string | undefined {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${rev}-dirty` : rev;
  } catch {
    return undefined;
  }
}

const notConnected: Remote = new Proxy({} as Remote, {
  get(_t, prop) {
    if (prop === 'dryRun') return false;
    throw new Error(`not connected yet (remote.${String(prop)} used from a tap instead of a task)`);
  },
});

const emptyFacts = (): NodeFacts => ({ setUp: false, otherSites: {}, env: {}, envLocal: {} });

/** Apply core and the project's plugins to a fresh set of hooks. */
export function applyPlugins(project: Project) {
  const hooks = createHooks();
  const taps = interceptHooks(hooks);
  for (const plugin of [corePlugin, ...project.plugins]) plugin.apply?.(hooks, project.site);
  return { hooks, taps };
}

export async function deployCommand(kit: CoreKit, nodeArg: string | undefined, options: DeployCommandOptions): Promise<void> {
  const project = await kit.loadProject();
  const { site } = project;
  const nodes = expandNodes(nodeArg, site.config, site.configFile);
  const { hooks } = applyPlugins(project);
  const id = newReleaseId();
  const revision = gitRevision(site.sourceDir);
  const deployer = `${os.userInfo().username}@${os.hostname()}`;
  const globals = kit.options();
  const lockWaitMs = parseDuration(options.lockWait);

  const contexts = nodes.map(
    (node): DeployContext => ({
      site,
      node,
      remote: notConnected,
      options: globals,
      log: kit.log,
      state: new Map(),
      release: { id, path: `${site.paths.releases}/${id}`, venv: '', revision, deployer },
      deploy: { upgradePackages: options.upgradePackages ?? false, lockWaitMs },
      facts: emptyFacts(),
      env: {},
      files: new RemoteFileSet(),
    }),
  );

  // Taps only add tasks, so every phase is collected before anything runs (and --dry-run can show it all).
  const phases = await Promise.all(
    contexts.map(async (ctx) => {
      const byPhase = await Promise.all(deployPhases.map((phase) => collectTasks(hooks[phase], phase, ctx)));
      return byPhase.map((list, i) => ({ phase: deployPhases[i]!, tasks: list.sorted() as RunnableTask<DeployContext>[] }));
    }),
  );

  const connectTask = (ctx: DeployContext): RunnableTask<DeployContext> => ({
    title: `connect to ${ctx.node}`,
    stage: -1000,
    run: async (c, task) => {
      const target = await kit.resolveNode(c.node, project);
      c.remote = await kit.connect(target);
      task.title(`connect to ${c.node} (${target.user}@${target.host}${target.port !== 22 ? `:${target.port}` : ''})`);
    },
  });

  const nodeGroup = (ctx: DeployContext, i: number, which: 'prepare' | 'live'): TaskGroup<DeployContext> => {
    const selected = phases[i]!.filter((p) => (which === 'live' ? p.phase === 'restart' : p.phase !== 'restart'));
    const groups: TaskGroup<DeployContext>[] = selected.map((p) => ({ title: p.phase, tasks: p.tasks, ctx, node: ctx.node }));
    if (which === 'prepare') (groups[0]!.tasks as RunnableTask<DeployContext>[]).unshift(connectTask(ctx));
    return { title: nodes.length > 1 ? ctx.node : which === 'prepare' ? `deploy ${site.name} to ${ctx.node}` : 'go live', tasks: groups, ctx, node: ctx.node };
  };

  const prepare = contexts.map((ctx, i) => nodeGroup(ctx, i, 'prepare'));
  const live = contexts.map((ctx, i) => nodeGroup(ctx, i, 'live'));
  try {
    if (nodes.length === 1) {
      await kit.runTasks([...(prepare[0]!.tasks as TaskGroup<DeployContext>[]), ...(live[0]!.tasks as TaskGroup<DeployContext>[])], contexts[0]!);
    } else {
      // Every node is made ready before any of them switches.
      await kit.runTasks([{ title: `prepare ${nodes.length} nodes`, tasks: prepare, concurrent: true }], contexts[0]!);
      await kit.runTasks([{ title: 'go live', tasks: live, concurrent: true }], contexts[0]!);
    }
  } finally {
    await Promise.all(contexts.map((ctx) => (ctx.remote === notConnected ? undefined : releaseLock(ctx))));
    if (!globals.quiet && globals.verbose) {
      for (const ctx of contexts) if (ctx.remote !== notConnected) kit.log.info(`${ctx.node}: ${ctx.remote.commandCount} remote commands`);
    }
  }
  if (!globals.dryRun) {
    const scheme = site.config.tls ? 'https' : 'http';
    kit.log.info(`Deployed ${site.name} release ${id} to ${nodes.join(', ')}: ${scheme}://${site.canonicalDomain}/`);
  } else {
    kit.log.info(`Dry run: nothing was changed on ${nodes.join(', ')}.`);
  }
}

