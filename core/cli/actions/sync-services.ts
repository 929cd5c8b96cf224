/**
 * `kraftwerk sync-services <from> <to>`: copy the site's data (database,
 * uploads, …) from one node to another, e.g. production to stage. A dump on
 * the source, copied through this machine with rsync (no agent forwarding, no
 * key on either server for the other), then loaded on the target after the
 * target's own safety dump.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DumpContext } from '../../engine/context.ts';
import { dumpDir, newDumpId } from '../../lifecycle/dumps.ts';
import { UsageError } from '../../errors.ts';
import type { CoreKit } from '../kit.ts';
import type { RunnableTask } from '../../engine/runner.ts';
import { sh } from '../../shell/sh.ts';
import { Stage } from '../../engine/tasks.ts';
import { applyPlugins } from './deploy.ts';
import { dumpContext, dumpTasks, loadTasks } from './dump.ts';
import { commandTopology, connect, connectTask, confirmOrStop, notConnected, requireDeployed, singleNode } from './ops.ts';
import { formatSize } from './status.ts';

export async function syncServicesCommand(kit: CoreKit, from: string, to: string, options: { backup?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const { site } = project;
  const source = singleNode(project, from, 'sync-services');
  const target = singleNode(project, to, 'sync-services');
  if (source === target) throw new UsageError(`sync-services needs two different nodes, not ${source} twice`);
  const backupFirst = options.backup !== false;
  await confirmOrStop(
    kit,
    `Replace the data of ${site.name} on ${target} with the data from ${source}?${backupFirst ? ` A dump of ${target}'s current data is taken first.` : ''}`,
  );
  const { hooks } = applyPlugins(project);
  const id = newDumpId(new Date(), 'sync');
  // Each node in its own group: a plugin dumps and loads only where its role is (the database on its node).
  const [from_, to_] = await Promise.all([commandTopology(kit, project, [source]), commandTopology(kit, project, [target])]);
  const dumpCtx = dumpContext(kit, project, source, id, undefined, from_.get(source));
  const dump = await dumpTasks(hooks, project, dumpCtx, 'sync');
  const load = await loadTasks(kit, hooks, project, target, id, { backupFirst }, to_.get(target));
  const local = await mkdtemp(path.join(os.tmpdir(), 'kraftwerk-sync-'));

  const sourceTasks: RunnableTask<DumpContext>[] = [
    connectTask<DumpContext>(kit, project),
    { title: 'check site', stage: Stage.PREPARE - 100, run: (c) => requireDeployed(c.remote, site, c.node) },
    ...dump,
  ];
  const transfer: RunnableTask<DumpContext>[] = [
    {
      title: `copy ${id} from ${source} to ${target} through this machine`,
      run: async (c, task) => {
        // The target's connection, which its load tasks then use.
        if (load.ctx.remote === notConnected) load.ctx.remote = await connect(kit, project, target);
        const got = await c.remote.rsync({ kind: 'pull', remoteDir: dumpDir(site, id), localDir: local }, { onLine: (l) => task.output(`${source}: ${l}`) });
        await load.ctx.remote.rsync({ kind: 'push', localDir: local, remoteDir: dumpDir(site, id) }, { onLine: (l) => task.output(`${target}: ${l}`) });
        if (got) task.title(`copied ${id} from ${source} to ${target} (${formatSize(Math.round(got.bytesReceived / 1024))})`);
        // The source keeps no copy of a dump that only existed to be moved.
        await c.remote.exec(sh`rm -rf -- ${dumpDir(site, id)}`);
      },
    },
  ];
  try {
    await kit.runTasks(
      [
        { title: `dump ${site.name} on ${source}`, tasks: sourceTasks, ctx: dumpCtx, node: source },
        { title: 'transfer', tasks: transfer, ctx: dumpCtx },
        { title: `load into ${site.name} on ${target}`, tasks: load.tasks, ctx: load.ctx, node: target },
      ],
      dumpCtx,
    );
  } finally {
    await load.cleanup();
    await rm(local, { recursive: true, force: true });
  }
  if (!kit.options().dryRun) kit.log.info(`Copied the data of ${site.name} from ${source} to ${target} (dump ${id}).`);
}
