/**
 * `kraftwerk destroy [node] [--keep-data] [--yes]`: remove the site from the
 * node. Every plugin's `destroy` tap removes what it created (services, nginx
 * site, cron file, database and role, Redis user, …); core then removes the
 * folders, the log folder, the registration and the site user. Other sites on
 * the node are untouched: every path and name is the site's own.
 * With --keep-data a last dump is taken first, and uploads, backups and the
 * site user (their owner) stay.
 */
import type { DestroyContext, DumpContext } from '../../engine/context.ts';
import { newDumpId } from '../../lifecycle/dumps.ts';
import { collectTasks } from '../../engine/hooks.ts';
import type { CoreKit } from '../kit.ts';
import type { DeployLock } from '../../lifecycle/lock.ts';
import type { Project } from '../../engine/plugin.ts';
import { SITES_DIR } from '../../lifecycle/probe.ts';
import { runInline, type RunnableTask, type TaskGroup } from '../../engine/runner.ts';
import { siteWebGroup } from '../../config/site.ts';
import { type Script, sh } from '../../shell/sh.ts';
import type { Site } from '../../config/site.ts';
import { Stage, type TaskHandle } from '../../engine/tasks.ts';
import { applyPlugins } from './deploy.ts';
import { dumpContext, dumpTasks } from './dump.ts';
import { commandTopology, confirmOrStop, connectTask, nodeContext, nodesOf, takeSiteLock } from './ops.ts';

/** Prints `deployed` / `present` so destroy can say what it found. */
export function siteExistsCommand(site: Site): Script {
  return sh`[ -d ${`${site.paths.current}/`} ] && echo deployed; { [ -d ${site.paths.root} ] || [ -d ${`${SITES_DIR}/${site.name}`} ] || id -u ${site.user} >/dev/null 2>&1; } && echo present; true`;
}

/**
 * Core's share of destroying a site, after the plugins removed theirs: its
 * registration, folders, logs, and the site user with its group (its
 * processes are gone with its services; stragglers such as a running cron job
 * are killed first, or userdel would refuse).
 */
export function removeSiteCommand(site: Site, keepData: boolean): Script {
  const p = site.paths;
  // The uWSGI sockets are in the releases (releaseConfig): they go with them.
  const common = sh`rm -rf -- ${`${SITES_DIR}/${site.name}`} ${p.logs}`;
  if (keepData) {
    return sh`${common}
if [ -d ${p.root} ]; then
  cd ${p.root} && rm -rf -- releases venvs current current.new .kraftwerk shared/env shared/env.local
fi`;
  }
  return sh`${common}
rm -rf -- ${p.root}
if id -u ${site.user} >/dev/null 2>&1; then
  pkill -KILL -u ${site.user} 2>/dev/null; sleep 0.2
  userdel ${site.user}
fi
getent group ${site.user} >/dev/null && groupdel ${site.user}
getent group ${siteWebGroup(site)} >/dev/null && groupdel ${siteWebGroup(site)}; true`;
}

/**
 * `removed`: what the plugins remove, in the words of the CLI frame's help for
 * destroy (one text for both, so the question says what --help says).
 */
export async function destroyCommand(kit: CoreKit, nodeArg: string | undefined, options: { keepData?: boolean }, removed: string, given?: Project): Promise<void> {
  // `given`: another site than kraftwerk.yaml's (a preview, see previews.ts).
  const project = given ?? (await kit.loadProject());
  const { site } = project;
  const nodes = nodesOf(project, nodeArg);
  const keepData = options.keepData ?? false;
  await confirmOrStop(
    kit,
    `Destroy site ${site.name} on ${nodes.join(', ')}? Its ${removed}, code and logs are removed` +
      (keepData ? '; uploads and backups stay (a last dump is taken first).' : ', and its uploads and backups too.'),
  );
  const { hooks } = applyPlugins(project);
  const groups: TaskGroup<DestroyContext>[] = [];
  const locks: DeployLock[] = [];
  // Each node removes what its roles put there (a database node its database, a web node its web server's site).
  const topology = await commandTopology(kit, project, nodes);
  for (const node of nodes) {
    const ctx: DestroyContext = { ...nodeContext(kit, site, node, undefined, topology.get(node)), keepData };
    const found = { deployed: false, present: false };
    const pluginTasks = (await collectTasks(hooks.destroy, 'destroy', ctx)).sorted();
    const lastDumpCtx: DumpContext = dumpContext(kit, project, node, newDumpId(new Date(), 'destroy'));
    const lastDump = keepData ? await dumpTasks(hooks, project, lastDumpCtx, 'dump') : [];
    const tasks: RunnableTask<DestroyContext>[] = [
      connectTask<DestroyContext>(kit, project),
      {
        title: 'inspect node',
        stage: Stage.PREPARE - 100,
        run: async (c, task) => {
          const { stdout } = await c.remote.exec(siteExistsCommand(site));
          found.deployed = stdout.includes('deployed');
          found.present = stdout.includes('present');
          locks.push(await takeSiteLock(c, task, 'destroy'));
          task.title(found.present ? `inspect node (${site.name} ${found.deployed ? 'deployed' : 'partly set up'})` : `inspect node (no ${site.name} here: removing leftovers only)`);
        },
      },
      ...(keepData
        ? [
            {
              title: 'last dump before destroying',
              stage: Stage.PREPARE - 50,
              skip: () => (found.deployed ? false : 'not deployed: nothing to dump'),
              run: async (c: DestroyContext, task: TaskHandle) => {
                lastDumpCtx.remote = c.remote;
                await runInline(lastDump, lastDumpCtx, task);
                task.title(`last dump ${lastDumpCtx.id}`);
              },
            } satisfies RunnableTask<DestroyContext>,
          ]
        : []),
      ...pluginTasks,
      {
        title: keepData ? 'remove code, environment and logs (keeping uploads and backups)' : 'remove folders, logs and site user',
        stage: Stage.LATE + 100,
        run: async (c) => {
          await c.remote.exec(removeSiteCommand(site, keepData));
        },
      },
    ];
    groups.push({ title: nodes.length > 1 ? node : `destroy ${site.name} on ${node}`, tasks, ctx, node });
  }
  try {
    await kit.runTasks(nodes.length > 1 ? [{ title: `destroy ${site.name}`, tasks: groups, concurrent: true }] : groups, groups[0]!.ctx!);
  } finally {
    // The lock folder lives in /run/kraftwerk, not in the site: release it.
    await Promise.all(locks.map((l) => l.release().catch(() => undefined)));
  }
  if (!kit.options().dryRun) {
    kit.log.info(`Destroyed ${site.name} on ${nodes.join(', ')}.${keepData ? ` Uploads and backups are still in ${site.paths.root}.` : ''}`);
  }
}
