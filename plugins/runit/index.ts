/**
 * runit: supervises each site's uWSGI masters and their logs (svlogd): two
 * services, the web slots /etc/sv/kraftwerk-<site>@blue and @green (see
 * core/slots.ts), linked into /etc/service, where runsvdir starts the live
 * one at boot and restarts it when it dies. A deploy starts the new release in
 * the spare slot (the uwsgi plugin) and the switch retires the old one (core).
 */
import {
  definePlugin,
  isProvisioned,
  lifecycleHooks,
  provisionMarker,
  renderTemplate,
  sh,
  Stage,
  type Script,
  type DeployContext,
  type Hooks,
  type RemoteFile,
  type Site,
  writeMarkerCommand,
} from '../../core/index.ts';
import { findLiveSlot, slotDir, slotIni, slotLogDir, SLOTS, slotService, socketAcceptsCommand } from '../uwsgi/slots.ts';
import { renderLogRunScript, restartLoggersCommand, siteDirs, siteDirsCommand, removeServicesCommand, removeLegacyServiceCommand } from './commands.ts';
import { liveSocket } from '../uwsgi/paths.ts';
import { runitLogs, runitStatus } from './reports.ts';

const PLUGIN_NAME = 'runit';

/** Folder runsvdir watches (on Debian a symlink into /etc/runit/runsvdir). */
export const SERVICE_DIR = '/etc/service';
export const RUNSVDIR_UNIT = '/etc/systemd/system/kraftwerk-runsvdir.service';

/** The run and log/run scripts of the site's two web slots (see core/slots.ts). */
export async function renderRunitService(site: Site): Promise<RemoteFile[]> {
  const files: RemoteFile[] = [];
  for (const slot of SLOTS) {
    const dir = slotDir(site, slot);
    files.push(
      {
        path: `${dir}/run`,
        content: await renderTemplate(new URL('./templates/run.ejs', import.meta.url), { site, slot, ini: slotIni(site, slot) }),
        mode: 0o755,
      },
      { path: `${dir}/log/run`, content: renderLogRunScript(site, slotLogDir(site, slot), `web slot ${slot}`), mode: 0o755 },
    );
  }
  return files;
}

/**
 * The web slots whose log/run this deploy changed: their svlogd restarts
 * (also the live slot's: runsv keeps the pipe, no line is lost), so none
 * keeps running the way an earlier log/run said (e.g. as root).
 */
function changedLogRuns(ctx: DeployContext): string[] {
  return SLOTS.filter((slot) => ctx.files.changed.has(`${slotDir(ctx.site, slot)}/log/run`)).map((slot) => slotService(ctx.site, slot));
}

export function renderRunsvdirUnit(): Promise<string> {
  return renderTemplate(new URL('./templates/runsvdir.service.ejs', import.meta.url), { serviceDir: SERVICE_DIR });
}

/**
 * Make runsvdir run and start at boot. Prints one line per change, nothing when
 * everything was already so.
 * - systemd is PID 1: a unit of our own (Debian's runit ships none), written before this runs.
 * - sysvinit: a respawn line in /etc/inittab.
 * - neither (a container, where runsvdir is usually PID 1 already): start it detached.
 */
export function runsvdirCommand(options: { unitChanged: boolean }): Script {
  const reloadUnits = options.unitChanged ? sh`systemctl daemon-reload; echo 'wrote ${RUNSVDIR_UNIT}'` : sh`:`;
  return sh`set -e
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  ${reloadUnits}
  systemctl is-enabled --quiet kraftwerk-runsvdir.service || { systemctl enable --quiet kraftwerk-runsvdir.service; echo 'enabled runsvdir at boot'; }
  systemctl is-active --quiet kraftwerk-runsvdir.service || { systemctl start kraftwerk-runsvdir.service; echo 'started runsvdir'; }
elif pgrep -x runsvdir >/dev/null; then
  :
elif [ -f /etc/inittab ]; then
  grep -q '^kw:' /etc/inittab || echo 'kw:2345:respawn:/usr/bin/runsvdir -P ${SERVICE_DIR}' >> /etc/inittab
  telinit q
  echo 'started runsvdir from /etc/inittab'
else
  setsid /usr/bin/runsvdir -P ${SERVICE_DIR} </dev/null >/dev/null 2>&1 &
  echo 'started runsvdir (no systemd or inittab here: it will not come back after a reboot)'
fi`;
}

/**
 * Reload the live slot gracefully (SIGHUP: uWSGI's master lets its workers
 * finish, re-executes itself under the same pid, re-reads its ini and envdir,
 * loads the app and forks new workers; requests wait in the socket's backlog
 * meanwhile), then wait for that to have happened: the master (runsv's
 * supervise/pid, read by root only) has workers again and none of them is one
 * it had before the signal, and the socket accepts. That is the event itself,
 * not a fixed pause: the socket alone accepts all along (the master keeps it
 * open across the re-exec), so it cannot tell an old app from a new one.
 * Prints `kraftwerk: reloaded`, or nothing when no slot serves `current`
 * (not deployed yet).
 */
export function reloadLiveSlotCommand(site: Site, waitSeconds = 30): Script {
  const pollSeconds = 0.05;
  const tries = Math.max(1, Math.round(waitSeconds / pollSeconds));
  return sh`${findLiveSlot(site)}
[ -n "$svc" ] || exit 0
kw_workers() { kw_m=$(cat "$svc/supervise/pid" 2>/dev/null) && [ -n "$kw_m" ] && echo $(pgrep -P "$kw_m"); }
kw_old=" $(kw_workers) "
sv hup "$svc" >/dev/null
kw_reloaded() {
  kw_now=$(kw_workers) && [ -n "$kw_now" ] || return 1
  for kw_p in $kw_now; do case "$kw_old" in *" $kw_p "*) return 1;; esac; done
  ${socketAcceptsCommand(liveSocket(site))}
}
i=0
until kw_reloaded; do
  i=$((i+1)); [ "$i" -lt ${tries} ] || { echo ${`kraftwerk: ${site.service} did not come back with new workers accepting on ${liveSocket(site)} within ${waitSeconds}s`} >&2; exit 1; }; sleep ${pollSeconds}
done
echo 'kraftwerk: reloaded'`;
}

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['web', 'worker', 'cron'],
  description: 'runit service per site (uWSGI as the site user, svlogd logs); start or graceful reload',
  nodeStatus: runitStatus,
  logs: runitLogs,
  apply(hooks: Hooks, site: Site) {
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add('runit');
      tasks.add({
        title: 'runsvdir running',
        stage: Stage.DEFAULT,
        run: async (ctx, task) => {
          // The unit is written on every node (inert without systemd), so a node that moves to systemd has it.
          const written = await ctx.remote.syncFiles([{ path: RUNSVDIR_UNIT, content: await renderRunsvdirUnit(), mode: 0o644 }]);
          const { stdout } = await ctx.remote.exec(runsvdirCommand({ unitChanged: written.length > 0 }));
          const changes = stdout.split('\n').filter(Boolean);
          ctx.changes.push(...changes);
          task.title(changes.length ? `runsvdir: ${changes.join('; ')}` : 'runsvdir running (unchanged)');
        },
      });
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      const dirs = siteDirs(ctx);
      for (const slot of SLOTS) dirs.add(slotLogDir(site, slot), { service: slotService(site, slot) });
      const marker = (c: DeployContext) => provisionMarker(site, 'site-dirs', siteDirsCommand(site, siteDirs(c)).text);
      ctx.probe.read(marker(ctx).path);
      tasks.add({
        title: 'runit service',
        run: async (ctx, task) => {
          for (const file of await renderRunitService(site)) ctx.files.add(file);
          task.title(`runit services ${site.service}@{${SLOTS.join(',')}}`);
        },
      });
      tasks.add({
        title: 'log folders',
        // After the files (a new log/run is in place), before the new release starts in its slot.
        stage: Stage.WRITE_FILES + 10,
        skip: (c) =>
          isProvisioned(c.facts, marker(c)) && [...siteDirs(c).dirs.keys()].every((d) => c.facts.exists.has(d)) && !changedLogRuns(c).length
            ? 'log folders (unchanged)'
            : false,
        run: async (c, task) => {
          const restart = changedLogRuns(c);
          // The marker goes with the folders: core has written ctx.files already (the log/run files come first).
          await c.remote.exec(sh`${siteDirsCommand(site, siteDirs(c))}
${restartLoggersCommand(restart)}
${writeMarkerCommand(marker(c))}`);
          task.title(`log folders (${siteDirs(c).dirs.size})${restart.length ? `; restarted ${restart.length} loggers` : ''}`);
        },
      });
    });

    // The environment or the data changed outside a deploy: a graceful reload re-reads the envdir.
    hooks.reload.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: `reload ${site.service}`,
        stage: Stage.RELOAD,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(reloadLiveSlotCommand(site));
          task.title(stdout.includes('kraftwerk: reloaded') ? `${site.service} reloaded` : `${site.service} (not running)`);
        },
      });
    });

    // Once a web slot serves, the single service of a Kraftwerk before slots goes, in the switch's own command.
    lifecycleHooks(hooks).switch.tap(PLUGIN_NAME, (_ctx, steps) => {
      steps.afterSwitch(removeLegacyServiceCommand(site));
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: `remove runit services of ${site.service}`,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(removeServicesCommand(SLOTS.map((slot) => slotService(site, slot)), 30));
          task.title(stdout.includes('removed') ? `removed runit services ${site.service}@{${SLOTS.join(',')}}` : `runit service ${site.service} (none)`);
        },
      });
    });
  },
});
