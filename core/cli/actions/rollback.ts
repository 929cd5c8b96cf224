import type { DeployContext } from '../../engine/context.ts';
import { outcomeReporter } from '../../lifecycle/outcome.ts';
import { KraftwerkError } from '../../errors.ts';
import type { CoreKit } from '../kit.ts';
import { expandNodes } from '../../remote/node.ts';
import { inspectNode } from '../../lifecycle/inspect-node.ts';
import { releaseLock } from '../../lifecycle/held-lock.ts';
import { noPreviousRelease, readReleaseRecord, rollbackContext, rollbackTasks } from '../../lifecycle/rollback.ts';
import type { RunnableTask, TaskGroup } from '../../engine/runner.ts';
import { applyPlugins, deployContext, localDeployer, parseDuration, siteUrlOf } from './deploy.ts';
import { connectTask, notConnected } from './ops.ts';
import { listReleasesCommand, parseReleases } from './releases.ts';

export interface RollbackOptions {
  to?: string;
  withData?: boolean;
  lockWait?: string;
}

/**
 * `kraftwerk rollback`: bring back the previous good release (or `--to <id>`)
 * with its own venv and configuration, reload, health check. On a group, every
 * node goes back together.
 */
export async function rollbackCommand(kit: CoreKit, nodeArg: string | undefined, options: RollbackOptions): Promise<void> {
  const startedAt = Date.now();
  const project = await kit.loadProject();
  const { site } = project;
  const nodes = expandNodes(nodeArg, site.config, site.configFile);
  const { hooks } = applyPlugins(project);
  const lockWaitMs = parseDuration(options.lockWait);

  const contexts = nodes.map((node) =>
    deployContext(kit, site, node, { release: { id: '', path: '', venv: '', deployer: '' }, deploy: { upgradePackages: false, lockWaitMs } }),
  );
  const targets = new Map<string, DeployContext>();
  // However the rollback ends, the plugins hear of it (a failure to tell is only a warning).
  const outcome = outcomeReporter(hooks, {
    site,
    command: 'rollback',
    nodes,
    deployer: localDeployer(),
    url: siteUrlOf(project),
    options: kit.options(),
    log: kit.log,
    startedAt,
  });
  /** The release the first node goes back to, once it was chosen. */
  const target = () => {
    const release = targets.get(nodes[0]!)?.release;
    return release && { id: release.id, revision: release.revision, previous: release.previous };
  };

  const choose: TaskGroup<DeployContext>[] = contexts.map((ctx) => ({
    title: ctx.node,
    ctx,
    node: ctx.node,
    tasks: [
      connectTask<DeployContext>(kit, project, { title: `connect to ${ctx.node}` }),
      { title: 'inspect node', run: (c, task) => inspectNode(c, task, 'rollback') },
      {
        title: 'choose release',
        run: async (c, task) => {
          const { stdout } = await c.remote.exec(listReleasesCommand(site));
          const releases = parseReleases(stdout);
          const wanted = options.to
            ? releases.find((r) => r.id === options.to)
            : releases.find((r) => r.status === 'previous');
          if (!wanted) {
            if (!options.to) throw noPreviousRelease(c.node);
            throw new KraftwerkError(`release ${options.to} is not on ${c.node}`, {
              hint: `Releases there: ${releases.map((r) => `${r.id} (${r.status})`).join(', ') || 'none'}`,
            });
          }
          if (wanted.status === 'failed') throw new KraftwerkError(`release ${wanted.id} on ${c.node} never went live (failed); pick another`);
          if (wanted.status === 'live') throw new KraftwerkError(`release ${wanted.id} is already live on ${c.node}`);
          const record = (await readReleaseRecord(c, wanted.id)) ?? { id: wanted.id };
          targets.set(c.node, rollbackContext(c, { ...record, id: wanted.id }));
          task.title(`roll back ${c.facts.currentRelease ?? '?'} → ${wanted.id}${record.revision ? ` (${record.revision})` : ''}`);
        },
      },
    ] satisfies RunnableTask<DeployContext>[],
  }));

  // Choose, confirm, switch every node; the locks are released before the outcome is told.
  const rollBack = async (): Promise<void> => {
    try {
      await kit.runTasks(choose, contexts[0]!, { concurrent: nodes.length > 1 });
      if (options.withData) {
        const { restoreSnapshotTasks } = await import('../../lifecycle/snapshots.ts');
        const ok = await kit.confirm(
          `Restore the database of ${site.name} to the snapshot taken before release ${contexts.map((c) => c.facts.currentRelease).join(', ')} ran its release commands? Everything written to it since then is lost.`,
        );
        if (!ok) throw new KraftwerkError('rollback --with-data needs a confirmation', { hint: 'Answer yes, or pass --yes.' });
        await kit.runTasks(contexts.map((c) => restoreSnapshotTasks(hooks, c)), contexts[0]!);
      }
      const go: TaskGroup<DeployContext>[] = [];
      for (const ctx of contexts) {
        const rctx = targets.get(ctx.node)!;
        go.push({ title: `${ctx.node}: ${rctx.release.id}`, tasks: await rollbackTasks(hooks, rctx), ctx: rctx, node: ctx.node });
      }
      await kit.runTasks(go, contexts[0]!, { concurrent: nodes.length > 1 });
    } finally {
      await Promise.all(contexts.map((c) => (c.remote === notConnected ? undefined : releaseLock(c))));
    }
    kit.log.info(`Rolled back ${site.name} on ${nodes.map((n) => `${n} to ${targets.get(n)?.release.id}`).join(', ')}.`);
  };

  try {
    await rollBack();
  } catch (err) {
    await outcome('failed', target(), err);
    throw err;
  }
  await outcome('rolled_back', target());
}
