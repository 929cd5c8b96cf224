/**
 * processes: the site's worker processes (`processes:` in kraftwerk.yaml, e.g.
 * `worker: celery -A proj worker`), each a runit service
 * kraftwerk-<site>-<name> with its own svlogd log. Restarted on every deploy
 * after the switch so they run the new release; a process dropped from the
 * config has its service stopped and removed.
 */
import {
  definePlugin,
  parseSvStatus,
  processServiceFiles,
  processServiceName,
  pruneProcessServicesCommand,
  restartCommand,
  RUNIT_SV_DIR,
  sequence,
  Stage,
  startOrRestartCommand,
  type Hooks,
  type Site,
} from '../../core/index.ts';

const PLUGIN_NAME = 'processes';

export function configuredProcesses(site: Site): [string, string][] {
  return Object.entries(site.config.processes);
}

export default definePlugin({
  name: PLUGIN_NAME,
  description: 'worker processes from `processes:` as runit services, restarted on deploy',
  apply(hooks: Hooks, site: Site) {
    const processes = configuredProcesses(site);
    const services = processes.map(([name]) => processServiceName(site, name));

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      if (!processes.length) return;
      tasks.add({
        title: 'worker services',
        run: (ctx, task) => {
          for (const [name, command] of processes) for (const f of processServiceFiles(site, name, command)) ctx.files.add(f);
          task.title(`worker services (${processes.map(([n]) => n).join(', ')})`);
        },
      });
    });

    hooks.restart.tap(PLUGIN_NAME, (ctx, tasks) => {
      // A process dropped from the config still has a service to remove: skipped only when the
      // probe found no service of the site's processes and none is being written (a rollback restores some).
      const pattern = `${RUNIT_SV_DIR}/${site.service}-*`;
      ctx.probe.glob(pattern);
      tasks.add({
        title: processes.length ? 'restart workers' : 'workers',
        stage: Stage.RELOAD + 10,
        skip: (c) =>
          !processes.length && c.facts.globs.get(pattern)?.length === 0 && !c.files.all.some((f) => f.path.startsWith(`${RUNIT_SV_DIR}/${site.service}-`))
            ? 'no processes configured'
            : false,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(
            sequence(pruneProcessServicesCommand(site, processes.map(([n]) => n)), startOrRestartCommand(services)),
          );
          const lines = stdout.split('\n').filter(Boolean);
          const removed = lines.filter((l) => l.startsWith('removed ')).map((l) => l.slice(8));
          const states = lines.filter((l) => !l.startsWith('removed ')).map((l) => {
            const i = l.indexOf(': ');
            return parseSvStatus(l.slice(0, i), l.slice(i + 2));
          });
          const notRunning = states.filter((s) => s.state !== 'run');
          const parts: string[] = [];
          if (states.length) parts.push(`${states.length - notRunning.length}/${states.length} running`);
          if (removed.length) parts.push(`removed ${removed.join(', ')}`);
          if (ctx.remote.dryRun) return;
          if (!parts.length) return task.skip('no processes configured');
          task.title(`workers: ${parts.join('; ')}`);
          if (notRunning.length && !ctx.remote.dryRun) {
            ctx.log.warn(
              `${ctx.node}: worker ${notRunning.map((s) => `${s.service} is ${s.state}`).join(', ')}; see: kraftwerk logs ${ctx.node} --process ${notRunning[0]!.service.slice(site.service.length + 1)}`,
            );
          }
        },
      });
    });

    hooks.reload.tap(PLUGIN_NAME, (_ctx, tasks) => {
      if (!processes.length) return;
      tasks.add({
        title: 'restart workers',
        stage: Stage.RELOAD + 10,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(restartCommand(services));
          task.title(`restart workers (${stdout.split('\n').filter(Boolean).length} restarted)`);
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'remove worker services',
        stage: Stage.EARLY,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(pruneProcessServicesCommand(site, []));
          const removed = stdout.split('\n').filter((l) => l.startsWith('removed '));
          task.title(removed.length ? `removed ${removed.length} worker services` : 'worker services (none)');
        },
      });
    });

  },
});
