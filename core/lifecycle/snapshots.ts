import type { DeployContext, DumpContext } from '../engine/context.ts';
import { KraftwerkError } from '../errors.ts';
import { collectTasks, type Hooks } from '../engine/hooks.ts';
import { runInline, type RunnableTask, type TaskGroup } from '../engine/runner.ts';
import { sh } from '../shell/sh.ts';
import type { TaskHandle } from '../engine/tasks.ts';

/**
 * Snapshots of a site's data taken before release commands (migrations) run:
 * the `dump` hook with kind `snapshot` into backups/pre-<release id>. Plugins
 * whose data migrations change (postgres) take part; `rollback --with-data`
 * restores it through the `load` hook.
 */
export function snapshotDir(ctx: { site: DeployContext['site'] }, releaseId: string): string {
  return `${ctx.site.paths.backups}/pre-${releaseId}`;
}

function dumpContext(ctx: DeployContext, releaseId: string): DumpContext {
  return { ...ctx, dir: snapshotDir(ctx, releaseId), id: `pre-${releaseId}`, kind: 'snapshot' };
}

/** Take the snapshot of the data the new release's commands may change. */
export async function takeSnapshot(hooks: Hooks, ctx: DeployContext, task: TaskHandle): Promise<number> {
  const dctx = dumpContext(ctx, ctx.release.id);
  const list = await collectTasks(hooks.dump, 'dump', dctx);
  if (!list.length) return 0;
  await ctx.remote.exec(sh`install -d -m 0700 ${dctx.dir}`);
  return (await runInline(list.sorted() as RunnableTask<DumpContext>[], dctx, task)).length;
}

/** Tasks that restore the snapshot taken before the live release's commands ran. */
export function restoreSnapshotTasks(hooks: Hooks, ctx: DeployContext): TaskGroup<DeployContext> {
  return {
    title: `${ctx.node}: restore data`,
    ctx,
    node: ctx.node,
    tasks: [
      {
        title: 'restore the data snapshot',
        run: async (c, task) => {
          const live = c.facts.currentRelease;
          if (!live) throw new KraftwerkError(`nothing is live on ${c.node}`);
          const dctx = dumpContext(c, live);
          const check = await c.remote.exec(sh`test -d ${dctx.dir}`, { check: false });
          if (check.code !== 0) {
            throw new KraftwerkError(`there is no data snapshot for release ${live} on ${c.node} (${dctx.dir})`, {
              hint: 'Snapshots are taken only before release commands run. Roll back without --with-data, or restore a backup with kraftwerk load.',
            });
          }
          const list = await collectTasks(hooks.load, 'load', dctx);
          const ran = (await runInline(list.sorted() as RunnableTask<DumpContext>[], dctx, task)).length;
          task.title(`restore the data snapshot taken before ${live} (${ran} parts)`);
        },
      },
    ],
  };
}
