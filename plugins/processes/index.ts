/**
 * processes: the site's worker processes (`processes:` in kraftwerk.yaml, e.g.
 * `worker: celery -A proj worker`), each a runit service
 * kraftwerk-<site>-<name> with its own svlogd log (run as the site user, in a
 * folder made at deploy time). The service files are written by the switch
 * (RemoteFile.atSwitch) and the services restarted right after it, so they run
 * the new release and a deploy that fails before its switch leaves the live
 * ones as they were; a rollback brings back the old release's. A process
 * dropped from the config has its service stopped and removed.
 */
import {
  ConfigError,
  definePlugin,
  siteLogRootCommand,
  type DeployContext,
  sequence,
  Stage,
  type Hooks,
  type Site,
  settingsOf,
} from '../../core/index.ts';
import { processLogDir, restartLoggersCommand, siteDirs, parseSvStatus, processServiceFiles, processServiceName, pruneProcessServicesCommand, restartCommand, RUNIT_SV_DIR, startOrRestartCommand } from '../runit/commands.ts';
import { PROCESSES_SETTINGS } from './settings.ts';

const PLUGIN_NAME = 'processes';

/**
 * `processes:` as [name, command] pairs. A command becomes part of a run script
 * (quoted for sh): a NUL byte cannot be, and is refused naming the key before
 * anything touches a server.
 */
export function configuredProcesses(site: Site): [string, string][] {
  const entries = Object.entries(settingsOf(site, PROCESSES_SETTINGS).processes);
  for (const [name, command] of entries) {
    if (command.includes('\0')) {
      throw new ConfigError(site.configFile, `processes.${name}`, 'a command cannot contain a NUL byte', { hint: 'Remove the NUL byte from the command.' });
    }
  }
  return entries;
}

/** The worker services whose log/run this deploy (or rollback) changed: their svlogd restarts with the new script. */
function changedLoggers(ctx: DeployContext, site: Site): string[] {
  const out: string[] = [];
  for (const p of ctx.files.changed) {
    const m = /^\/etc\/sv\/([^/]+)\/log\/run$/.exec(p);
    if (m && m[1]!.startsWith(`${site.service}-`)) out.push(m[1]!);
  }
  return out;
}

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['worker'],
  init: {
    examples: ({ framework, module }) => ({
      processes: framework === 'django' ? { worker: 'python -m celery -A ' + module + ' worker' } : { worker: 'python -m rq worker' },
    }),
  },
  description: 'worker processes from `processes:` as runit services, restarted on deploy',
  settings: PROCESSES_SETTINGS,
  apply(hooks: Hooks, site: Site) {
    const processes = configuredProcesses(site);
    const services = processes.map(([name]) => processServiceName(site, name));

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      if (!processes.length) return;
      for (const [name] of processes) siteDirs(ctx).add(processLogDir(site, name), { service: processServiceName(site, name) });
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
          // A new log/run (written with the switch): its svlogd restarts, and the site's log folder is
          // root's again in case an earlier Kraftwerk's logger made it the site's meanwhile (one deploy's migration).
          const loggers = changedLoggers(ctx, site);
          const { stdout } = await ctx.remote.exec(
            sequence(
              pruneProcessServicesCommand(site, processes.map(([n]) => n)),
              startOrRestartCommand(services),
              ...(loggers.length ? [siteLogRootCommand(site), restartLoggersCommand(loggers)] : []),
            ),
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
