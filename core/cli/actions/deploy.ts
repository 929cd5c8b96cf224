import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { type DeployContext, NodeProbe, RemoteFileSet, type TrafficControl, TrafficSteps } from '../../engine/context.ts';
import { collectTasks, createHooks, deployPhases, type Hooks, interceptHooks, lifecycleHooks } from '../../engine/hooks.ts';
import type { CoreKit } from '../kit.ts';
import { expandNodes } from '../../remote/node.ts';
import type { Project } from '../../engine/plugin.ts';
import { firstAnswer } from '../../engine/registry.ts';
import { corePlugin } from '../../lifecycle/core-plugin.ts';
import { heldLock, releaseLock, RESTART_TASKS_STATE } from '../../lifecycle/held-lock.ts';
import { newReleaseId, releaseRecordPath } from '../../lifecycle/release-record.ts';
import { restoreFiles } from '../../lifecycle/release-files.ts';
import { collectSwitchSteps, SWITCHED_STATE, undoReleaseCommand } from '../../lifecycle/switch.ts';
import { emptyFacts } from '../../lifecycle/probe.ts';
import { outcomeReporter } from '../../lifecycle/outcome.ts';
import { sh } from '../../shell/sh.ts';
import { readReleaseRecord, rollbackContext, rollbackTasks } from '../../lifecycle/rollback.ts';
import { KraftwerkError } from '../../errors.ts';
import { deployTimeouts, parseDuration } from '../../config/durations.ts';
import { DeployInterrupt, InterruptedError, interruptOf } from '../../engine/interrupt.ts';
import { Stage } from '../../engine/tasks.ts';
import { type RunnableTask, type TaskGroup, taskFailure } from '../../engine/runner.ts';
import { GuardedRemote, type Remote } from '../../remote/remote.ts';
import { commandTopology, connectTask, nodeContext, notConnected } from './ops.ts';
import { hasRole, knownRoles, placementOf, type Topology } from '../../engine/topology.ts';
import { confirmLive, unchangedRelease } from '../../lifecycle/no-change.ts';
import { releaseTree } from '../../lifecycle/fingerprint.ts';
import { Timings } from '../../engine/timings.ts';
import type { Site } from '../../config/site.ts';

export interface DeployCommandOptions {
  upgradePackages?: boolean;
  /** e.g. "90s", "5m", "0" */
  lockWait?: string;
  /** Deploy even when nothing changed since the live release. */
  force?: boolean;
  /** Print each phase's and each task's wall time at the end. */
  timings?: boolean;
  allowDestructiveMigrations?: boolean;
  /** Switch every node of the group together, also behind a balancer (no rolling deploy). */
  allAtOnce?: boolean;
}

// Re-exported: rollback and the tests take it from here.
export { parseDuration } from '../../config/durations.ts';

/** Who runs a deploy or a rollback: the local user@host (release records and outcomes name it). */
export function localDeployer(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}

/** Where the site answers: the first plugin's answer (https with a certificate), else plain http. */
export function siteUrlOf(project: Project): string {
  return firstAnswer(project.plugins, 'siteUrl', project.site) ?? `http://${project.site.canonicalDomain}/`;
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

/** A deploy's (or a rollback's) context for one node, not connected yet and knowing nothing of it. */
export function deployContext(
  kit: CoreKit,
  site: Site,
  node: string,
  parts: Pick<DeployContext, 'release' | 'deploy'>,
  topology?: Topology,
): DeployContext {
  return { ...nodeContext(kit, site, node, notConnected, topology), ...parts, probe: new NodeProbe(), facts: emptyFacts(), env: {}, files: new RemoteFileSet() };
}

/**
 * Apply core and the project's plugins to a fresh set of hooks. In a group split by role, a plugin's
 * taps run only for the nodes of its roles (`runsOn`): its tasks and lifecycle steps stay off the others.
 */
export function applyPlugins(project: Project) {
  const hooks = createHooks();
  const taps = interceptHooks(hooks, undefined, placementOf(project.plugins));
  for (const plugin of [corePlugin, ...project.plugins]) plugin.apply?.(hooks, project.site);
  return { hooks, taps };
}

/** What the undo of a node did, for the closing message of an interrupted deploy. */
interface Undone {
  node: string;
  /** This deploy held the node's lock (else it changed nothing there). */
  held: boolean;
  /** The unswitched release's folder was removed. */
  removed: boolean;
  lockReleased?: boolean;
}

/**
 * A deploy failed or was stopped before a node switched: stop the new release
 * where it was started beside the live one, remove its folder if asked, and put back
 * the configuration files of the live release, so what is on disk matches
 * what is serving. Only on nodes whose lock this deploy still holds (another
 * deploy of the same second has the same release id). Best effort: the next
 * deploy cleans up what is left.
 */
async function undoUnswitched(hooks: Hooks, contexts: DeployContext[], options: { remove: boolean }): Promise<Undone[]> {
  return Promise.all(
    contexts.map(async (ctx): Promise<Undone> => {
      const lock = heldLock(ctx);
      if (ctx.remote === notConnected || ctx.remote.dryRun || !lock || lock.lost || ctx.state.get(SWITCHED_STATE)) {
        return { node: ctx.node, held: Boolean(lock && !lock.lost), removed: false };
      }
      const undo = collectSwitchSteps(hooks, ctx).then((steps) => undoReleaseCommand(ctx.site, ctx.release.id, lock.info.token, options, steps));
      const res = await undo.then((command) => ctx.remote.exec(command, { check: false })).catch(() => undefined);
      if (ctx.files.changed.size && ctx.release.previous) await restoreFiles(ctx, ctx.release.previous).catch(() => undefined);
      return { node: ctx.node, held: true, removed: Boolean(res?.stdout.split('\n').includes('removed')) };
    }),
  );
}

/** The one line an interrupted deploy ends with: what it undid and what it left as it was, on each node. */
function interruptedMessage(interrupt: DeployInterrupt, contexts: DeployContext[], undone: Undone[]): InterruptedError {
  const parts = contexts.map((ctx, i) => {
    const u = undone[i]!;
    const where = contexts.length > 1 ? `${ctx.node}: ` : '';
    if (!u.held) return `${where}nothing changed on ${ctx.node}`;
    const release = u.removed ? `release ${ctx.release.id} removed` : `release ${ctx.release.id} left for the next deploy to remove`;
    const live = ctx.release.previous ? `live release ${ctx.release.previous} untouched` : 'no release was live, none is';
    const lock = u.lockReleased === false ? 'lock not released (it goes stale)' : 'lock released';
    return `${where}${release}, ${live}, ${lock}`;
  });
  return new InterruptedError(`interrupted (${interrupt.received ?? 'signal'}): ${parts.join('; ')}`);
}

/** Prepare tasks that do not start once the deploy was stopped. */
function stoppable(tasks: RunnableTask<DeployContext>[]): RunnableTask<DeployContext>[] {
  return tasks.map((t) => ({
    ...t,
    run: (c: DeployContext, h) => {
      interruptOf(c)?.throwIfAborted();
      return t.run(c, h);
    },
  }));
}

/** Mark a node failed at its first failing task, and skip its remaining tasks. */
function guarded(tasks: RunnableTask<DeployContext>[]): RunnableTask<DeployContext>[] {
  return tasks.map((t) => ({
    ...t,
    skip: async (c: DeployContext) => (c.state.has(FAILED_STATE) ? 'skipped after a failure' : ((await t.skip?.(c)) ?? false)),
    run: async (c: DeployContext, h) => {
      try {
        // Stopped (Ctrl-C, lost lock) before the switch: nothing more starts. The switch task checks itself.
        if ((t.stage ?? Stage.DEFAULT) < Stage.SWITCH) interruptOf(c)?.throwIfAborted();
        await t.run(c, h);
      } catch (err) {
        const named = taskFailure(t, c.node, err);
        c.state.set(FAILED_STATE, named);
        throw named;
      }
    },
  }));
}

const FAILED_STATE = 'core.failed';

/**
 * The balanced nodes of a deploy (the `traffic` extension point), in the order of the command's
 * nodes, each with the controls of the plugins that balance it.
 */
async function balancedNodes(hooks: Hooks, contexts: DeployContext[]): Promise<Map<DeployContext, TrafficControl[]>> {
  const traffic = new TrafficSteps();
  for (const ctx of contexts) await lifecycleHooks(hooks).traffic.promise(ctx, traffic);
  const byNode = new Map<DeployContext, TrafficControl[]>();
  for (const ctx of contexts) {
    const controls = traffic.balanced.filter((b) => b.nodes.includes(ctx.node)).map((b) => b.control);
    if (controls.length) byNode.set(ctx, controls);
  }
  return byNode;
}

/**
 * Switch every node; if any fails (its health check, its reload), roll every
 * node that switched back to its previous release, then report the failure.
 * Rolling (a balancer in front of several nodes, not --all-at-once): the nodes it does not
 * balance go live first, together; then one balanced node at a time is drained, goes live
 * (its health check asks it directly) and is undrained; the first failure ends the roll.
 */
async function goLive(kit: CoreKit, hooks: Hooks, contexts: DeployContext[], restartTasks: RunnableTask<DeployContext>[][], timings: Timings, options: { allAtOnce: boolean }) {
  // One node: its record task may release the lock with its own command when nothing runs after it.
  // In a group, a node that went live is rolled back when another fails: it keeps its lock to the end.
  if (contexts.length === 1) contexts[0]!.state.set(RESTART_TASKS_STATE, restartTasks[0]);
  const balanced = options.allAtOnce || contexts.length === 1 ? new Map<DeployContext, TrafficControl[]>() : await balancedNodes(hooks, contexts);
  const rolling = balanced.size > 1;
  const drained = new Set<DeployContext>();
  const group = (ctx: DeployContext, i: number): TaskGroup<DeployContext> => {
    const controls = rolling ? balanced.get(ctx) : undefined;
    const tasks = controls ? [drainTask(controls, drained), ...restartTasks[i]!, undrainTask(controls, drained)] : restartTasks[i]!;
    return {
      title: contexts.length > 1 ? `go live on ${ctx.node}` : 'restart',
      tasks: guarded(timings.wrap(tasks, phaseLabel('restart', ctx, contexts))),
      ctx,
      node: ctx.node,
      keepGoing: true,
    };
  };
  const groups = contexts.map(group);
  if (!rolling) await kit.runTasks(groups, contexts[0]!, { concurrent: contexts.length > 1, keepGoing: true });
  else {
    const together = groups.filter((g) => !balanced.has(g.ctx!));
    if (together.length) await kit.runTasks(together, together[0]!.ctx!, { concurrent: together.length > 1, keepGoing: true });
    for (const g of groups.filter((x) => balanced.has(x.ctx!))) {
      if (contexts.some((c) => c.state.has(FAILED_STATE))) break;
      await kit.runTasks([g], g.ctx!, { keepGoing: true });
    }
  }
  const failed = contexts.filter((c) => c.state.has(FAILED_STATE));
  if (!failed.length) return;
  const back = contexts.filter((c) => c.state.get(SWITCHED_STATE) && c.release.previous);
  const rolledBack: string[] = [];
  let rollbackFailed = false;
  if (back.length) {
    const items: TaskGroup<DeployContext>[] = [];
    const balancedBack = new Set<DeployContext>();
    for (const ctx of back) {
      const target = (await readReleaseRecord(ctx, ctx.release.previous!)) ?? { id: ctx.release.previous! };
      const rctx = rollbackContext(ctx, { ...target, id: ctx.release.previous! });
      rctx.release.previous = ctx.release.id;
      const failedId = ctx.release.id;
      const tasks = await rollbackTasks(hooks, rctx);
      // The release that was rolled back is not a good one, even on a node where it passed:
      // without a good record, rollback never picks it and the next deploy prunes it.
      tasks.push({
        title: `mark ${failedId} as failed`,
        run: async (c) => {
          await c.remote.exec(sh`rm -f ${releaseRecordPath(c.site, failedId)}`);
        },
      });
      items.push({ title: `roll back ${ctx.node} to ${target.id}`, tasks, ctx: rctx, node: ctx.node });
      if (balanced.has(ctx)) balancedBack.add(rctx);
      rolledBack.push(`${ctx.node} → ${target.id}`);
    }
    // A roll goes back in the reverse order: the balanced nodes first, then the balancer and the others
    // (which would otherwise send requests again to a node still on the failed release).
    const batches = rolling ? [items.filter((x) => balancedBack.has(x.ctx!)), items.filter((x) => !balancedBack.has(x.ctx!))] : [items];
    for (const batch of batches.filter((b) => b.length)) {
      await kit.runTasks(batch, batch[0]!.ctx!, { concurrent: batch.length > 1 }).catch((err: unknown) => {
        rollbackFailed = true;
        kit.log.warn(`rolling back failed too: ${err instanceof Error ? err.message : String(err)}`);
      });
    }
  }
  // A node drained by the roll serves its old release again (it never switched, or went back): it takes requests again.
  // When a roll back failed, what it serves is unknown: it stays out of the traffic.
  const undrain = [...drained].filter((c) => !rollbackFailed || !c.state.get(SWITCHED_STATE));
  if (undrain.length) {
    const items = undrain.map((ctx) => ({ title: `put ${ctx.node} back`, tasks: [undrainTask(balanced.get(ctx)!, drained)], ctx, node: ctx.node }));
    await kit.runTasks(items, undrain[0]!).catch((err: unknown) => {
      kit.log.warn(`putting ${undrain.map((c) => c.node).join(', ')} back into the traffic failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }
  const first = failed[0]!.state.get(FAILED_STATE);
  const message = first instanceof Error ? first.message : String(first);
  const untouched = rolling ? contexts.filter((c) => balanced.has(c) && !c.state.has(FAILED_STATE) && !c.state.get(SWITCHED_STATE)).map((c) => c.node) : [];
  throw new KraftwerkError(
    `deploy of release ${failed[0]!.release.id} failed on ${failed.map((c) => c.node).join(', ')}: ${message}`,
    {
      hint: [
        rolledBack.length ? `Rolled back: ${rolledBack.join(', ')}. The previous release is serving.` : first instanceof KraftwerkError ? first.hint : undefined,
        untouched.length ? `The roll stopped: ${untouched.join(', ')} kept the previous release.` : undefined,
      ]
        .filter(Boolean)
        .join(' ') || undefined,
    },
  );
}

/** Before a node's switch in a roll: every balancer in front of it stops sending it requests. */
function drainTask(controls: TrafficControl[], drained: Set<DeployContext>): RunnableTask<DeployContext> {
  return {
    title: 'take the node out of the traffic',
    stage: Stage.SWITCH - 1,
    run: async (ctx, task) => {
      drained.add(ctx);
      for (const control of controls) await control.drain(ctx);
      task.title(`${ctx.node} out of the traffic`);
    },
  };
}

/** After a node's health check (and everything else of its restart) in a roll: it takes requests again. */
function undrainTask(controls: TrafficControl[], drained: Set<DeployContext>): RunnableTask<DeployContext> {
  return {
    title: 'put the node back into the traffic',
    stage: Stage.VERIFY + 1000,
    run: async (ctx, task) => {
      for (const control of controls) await control.undrain(ctx);
      drained.delete(ctx);
      task.title(`${ctx.node} back in the traffic`);
    },
  };
}

/** `project`: another than kraftwerk.yaml's (a preview's, see previews.ts). */
export async function deployCommand(kit: CoreKit, nodeArg: string | undefined, options: DeployCommandOptions, given?: Project): Promise<void> {
  const startedAt = Date.now();
  const since = performance.now();
  const timings = new Timings();
  try {
    await deployAndTell(kit, nodeArg, options, startedAt, timings, given);
  } finally {
    if (options.timings) for (const line of timings.lines('deploy', since)) kit.log.info(line);
  }
}

async function deployAndTell(kit: CoreKit, nodeArg: string | undefined, options: DeployCommandOptions, startedAt: number, timings: Timings, given?: Project): Promise<void> {
  const project = given ?? (await kit.loadProject());
  const { site } = project;
  const nodes = expandNodes(nodeArg, site.config, site.configFile);
  const topology = await commandTopology(kit, project, nodes);
  const { hooks } = applyPlugins(project);
  const id = newReleaseId();
  const revision = gitRevision(site.sourceDir);
  const deployer = localDeployer();
  const url = siteUrlOf(project);
  const lockWaitMs = parseDuration(options.lockWait);
  const contexts = nodes.map((node) =>
    deployContext(kit, site, node, {
      release: { id, path: `${site.paths.releases}/${id}`, venv: '', revision, deployer },
      deploy: { upgradePackages: options.upgradePackages ?? false, lockWaitMs, force: options.force ?? false, allowDestructiveMigrations: options.allowDestructiveMigrations ?? false },
    }, topology.get(node)),
  );
  // From here on, however the deploy ends, the plugins hear of it (a failure to tell is only a warning).
  const outcome = outcomeReporter(hooks, { site, command: 'deploy', nodes, deployer, url, options: kit.options(), log: kit.log, startedAt });
  // The probe found the live release (the one before this deploy); nodes of a group normally agree.
  const tried = () => ({ id, revision, previous: contexts[0]!.release.previous });
  let unchanged: string | undefined;
  try {
    unchanged = await runDeploy(kit, project, hooks, contexts, url, timings, options);
  } catch (err) {
    await outcome('failed', tried(), err);
    throw err;
  }
  // Nothing changed: the release that is live (and passed its check) is the deploy's.
  await outcome('deployed', unchanged ? { id: unchanged, revision: contexts[0]!.facts.liveRecord?.revision as string | undefined, previous: unchanged } : tried());
}

/** The nodes of a group split by role that have a role serving the others (RoleSpec.first). */
function firstRoleNodes(project: Project, contexts: DeployContext[]): Set<DeployContext> {
  const first = [...knownRoles(project.plugins).values()].filter((r) => r.first).map((r) => r.name);
  return new Set(contexts.filter((c) => c.topology.declared && first.some((r) => hasRole(c, r))));
}

/** A phase's name in --timings: with the node in a group of nodes. */
function phaseLabel(phase: string, ctx: DeployContext, contexts: DeployContext[]): string {
  return contexts.length > 1 ? `${phase}@${ctx.node}` : phase;
}

/**
 * Every node is unchanged (compareWithLiveTask): check each live release. True when each passed,
 * and then nothing was written on any node; a single node's lock went with its check, a group's
 * locks stay until all passed (core's finally releases them), as a failure deploys to every node.
 */
async function confirmUnchanged(kit: CoreKit, hooks: Hooks, contexts: DeployContext[], timings: Timings): Promise<boolean> {
  const passed = new Set<DeployContext>();
  const check = (ctx: DeployContext): RunnableTask<DeployContext>[] =>
    stoppable(
      timings.wrap(
        [{ title: 'health check of the live release', run: async (c, task) => void ((await confirmLive(hooks, c, task)) && passed.add(c)) }],
        phaseLabel('unchanged', ctx, contexts),
      ),
    );
  if (contexts.length === 1) await kit.runTasks(check(contexts[0]!), contexts[0]!);
  else await kit.runTasks(contexts.map((ctx) => ({ title: ctx.node, tasks: check(ctx), ctx, node: ctx.node })), contexts[0]!, { concurrent: true });
  return passed.size === contexts.length;
}

/** The deploy of a new release to every node of `contexts`, from collecting every phase's tasks to its closing line. */
async function runDeploy(kit: CoreKit, project: Project, hooks: Hooks, contexts: DeployContext[], url: string, timings: Timings, options: DeployCommandOptions): Promise<string | undefined> {
  const { site } = project;
  const nodes = contexts.map((c) => c.node);
  const { id } = contexts[0]!.release;
  const globals = kit.options();
  const { silenceMs } = deployTimeouts(site.config);
  const interrupt = new DeployInterrupt();
  for (const ctx of contexts) interrupt.attach(ctx);
  // The listing of the project's files (for the no-change check) runs here while the deploy connects.
  if (!globals.dryRun) void releaseTree(site).catch(() => undefined);

  // Taps only add tasks, so every phase is collected before anything runs (and --dry-run can show it all).
  const phases = await Promise.all(
    contexts.map(async (ctx) => {
      const byPhase = await Promise.all(deployPhases.map((phase) => collectTasks(hooks[phase], phase, ctx)));
      return byPhase.map((list, i) => ({ phase: deployPhases[i]!, tasks: list.sorted() as RunnableTask<DeployContext>[] }));
    }),
  );

  // Every command of the deploy: a silence timeout; the interruptible ones also stop with the deploy.
  const guard = (remote: Remote) => new GuardedRemote(remote, { signal: interrupt.signal, silenceMs });

  // preSync (connect, lock and probe, the no-change check) runs on every node first: when no node changes, nothing else runs.
  const phaseGroups = (ctx: DeployContext, i: number, which: (phase: string) => boolean): TaskGroup<DeployContext>[] => {
    const selected = phases[i]!.filter((p) => which(p.phase));
    const groups: TaskGroup<DeployContext>[] = selected.map((p) => ({
      title: p.phase,
      tasks: stoppable(timings.wrap(p.tasks, phaseLabel(p.phase, ctx, contexts))),
      ctx,
      node: ctx.node,
    }));
    return groups;
  };
  const runOnNodes = async (title: string, perNode: TaskGroup<DeployContext>[][], on: DeployContext[] = contexts) => {
    if (on.length === 1) await kit.runTasks(perNode[0]!, on[0]!);
    else {
      const tasks = on.map((ctx, i) => ({ title: ctx.node, tasks: perNode[i]!, ctx, node: ctx.node }));
      await kit.runTasks([{ title: `${title} ${on.length} nodes`, tasks, concurrent: true }], on[0]!);
    }
  };
  const checks = contexts.map((ctx, i) => {
    const groups = phaseGroups(ctx, i, (p) => p === 'preSync');
    // rsync's connection opens beside this one, so that the rsync after the lock and probe makes no handshake of its own.
    const connect = connectTask<DeployContext>(kit, project, { title: `connect to ${ctx.node}`, guard, rsyncSoon: true });
    (groups[0]!.tasks as RunnableTask<DeployContext>[]).unshift(...timings.wrap([connect], phaseLabel('preSync', ctx, contexts)));
    return groups;
  });
  const prepare = contexts.map((ctx, i) => phaseGroups(ctx, i, (p) => p !== 'preSync' && p !== 'restart'));

  const stopListening = interrupt.listen((m) => kit.log.warn(m));
  let undone: Undone[] | undefined;
  let unchanged: string | undefined;
  try {
    try {
      await runOnNodes('inspect', checks);
      if (contexts.every((c) => unchangedRelease(c)) && (await confirmUnchanged(kit, hooks, contexts, timings))) {
        unchanged = unchangedRelease(contexts[0]!);
      } else {
        // Every node is made ready before any of them switches; nothing live has changed yet. Nodes that
        // serve the others (a database node) are made ready first: the others' environment may need what they made.
        const first = firstRoleNodes(project, contexts);
        if (first.size && first.size < contexts.length) {
          await runOnNodes('prepare', prepare.filter((_, i) => first.has(contexts[i]!)), contexts.filter((c) => first.has(c)));
          await runOnNodes('prepare', prepare.filter((_, i) => !first.has(contexts[i]!)), contexts.filter((c) => !first.has(c)));
        } else await runOnNodes('prepare', prepare);
        await goLive(kit, hooks, contexts, phases.map((p) => p.find((x) => x.phase === 'restart')!.tasks), timings, { allAtOnce: options.allAtOnce ?? false });
      }
    } catch (err) {
      // A deploy that did not switch leaves nothing of its release, interrupted or failed: a failure may be
      // a full disk, which a kept partial release would keep full (its log is in the site's logs, not there).
      undone = await undoUnswitched(hooks, contexts, { remove: true });
      // A stopped deploy's commands fail in many ways as they are killed: the stop is what happened.
      if (!interrupt.signal.aborted) throw err;
      if (!interrupt.interrupted) throw interrupt.signal.reason;
    }
  } finally {
    const released = await Promise.all(contexts.map((ctx) => (ctx.remote === notConnected ? true : releaseLock(ctx))));
    undone?.forEach((u, i) => (u.lockReleased = released[i]));
    stopListening();
    if (globals.verbose) {
      for (const ctx of contexts) if (ctx.remote !== notConnected) kit.log.info(`${ctx.node}: ${ctx.remote.commandCount} remote commands`);
    }
  }
  if (undone) throw interruptedMessage(interrupt, contexts, undone);
  if (unchanged) {
    // Nodes of a group may have different live releases (each is what this deploy would make it).
    const ids = new Set(contexts.map((c) => unchangedRelease(c)));
    if (ids.size === 1) kit.log.info(`already live: ${unchanged} (no change)`);
    else for (const ctx of contexts) kit.log.info(`already live: ${unchangedRelease(ctx)} (no change) on ${ctx.node}`);
    return unchanged;
  }
  if (!globals.dryRun) {
    kit.log.info(`Deployed ${site.name} release ${id} to ${nodes.join(', ')}: ${url}`);
  } else {
    kit.log.info(`Dry run: nothing was changed on ${nodes.join(', ')}.`);
  }
  return undefined;
}

