/**
 * runit: supervises each site's uWSGI master and its log (svlogd). The service
 * /etc/sv/kraftwerk-<site> is linked into /etc/service, where runsvdir starts it
 * and restarts it when it dies; a deploy reloads it gracefully (SIGHUP through
 * `sv hup`: uWSGI keeps its socket, requests wait in the backlog meanwhile).
 */
import {
  definePlugin,
  renderTemplate,
  sh,
  Stage,
  type Command,
  type Hooks,
  type RemoteFile,
  type Site,
} from '../../core/index.ts';

const PLUGIN_NAME = 'runit';

/** Folder runsvdir watches (on Debian a symlink into /etc/runit/runsvdir). */
export const SERVICE_DIR = '/etc/service';
export const RUNSVDIR_UNIT = '/etc/systemd/system/kraftwerk-runsvdir.service';

export function serviceDefinitionDir(site: Site): string {
  return `/etc/sv/${site.service}`;
}

export function serviceLink(site: Site): string {
  return `${SERVICE_DIR}/${site.service}`;
}

/** The run and log/run scripts of the site's service. */
export async function renderRunitService(site: Site): Promise<RemoteFile[]> {
  const dir = serviceDefinitionDir(site);
  return [
    {
      path: `${dir}/run`,
      content: await renderTemplate(new URL('./templates/run.ejs', import.meta.url), { site, ini: site.paths.uwsgiIni }),
      mode: 0o755,
    },
    {
      path: `${dir}/log/run`,
      content: await renderTemplate(new URL('./templates/log-run.ejs', import.meta.url), { site }),
      mode: 0o755,
    },
  ];
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
export function runsvdirCommand(options: { unitChanged: boolean }): Command {
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
 * Wait (bounded) until a unix socket accepts connections. On timeout it prints
 * why, runs `onTimeout` (e.g. show a log) and exits 1.
 */
export function waitForSocketCommand(socket: string, seconds: number, onTimeout: Command = sh`:`): Command {
  const tries = Math.max(1, Math.round(seconds * 5));
  return sh`i=0; ready=
while [ "$i" -lt ${tries} ]; do
  if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' ${socket} 2>/dev/null; then ready=1; break; fi
  i=$((i+1)); sleep 0.2
done
if [ -z "$ready" ]; then echo ${`kraftwerk: ${socket} does not accept connections after ${seconds}s`} >&2; ${onTimeout}; exit 1; fi`;
}

export interface StartOrReload {
  /** The run script changed: a reload would not apply it, restart instead. */
  restart: boolean;
  /** The log/run script changed. */
  restartLog: boolean;
  /** Seconds to wait for the socket. */
  waitSeconds?: number;
}

/**
 * Start the site's service if it is new, else reload it gracefully; then wait
 * until its socket accepts. Prints `kraftwerk: started|reloaded|restarted`.
 * On failure the tail of the site's log goes to stderr (it ends up in the error).
 */
export function startOrReloadCommand(site: Site, how: StartOrReload): Command {
  const link = serviceLink(site);
  const wait = how.waitSeconds ?? 30;
  const reload = how.restart
    ? sh`sv -w ${wait} restart ${link} >/dev/null; echo 'kraftwerk: restarted'`
    : sh`case "$(sv status ${link})" in run:*) sv hup ${link} >/dev/null; echo 'kraftwerk: reloaded';; *) sv up ${link}; echo 'kraftwerk: started';; esac`;
  const log = how.restartLog ? sh`
  sv restart ${`${link}/log`} >/dev/null` : sh``;
  return sh`set -e
if [ ! -e ${link} ]; then
  ln -sfn ${serviceDefinitionDir(site)} ${link}
  echo 'kraftwerk: started'
else
  # runsvdir looks for new services every 5 seconds; runsv must be there before sv can talk to it.
  i=0; until sv status ${link} >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 100 ] || { echo ${`kraftwerk: runsv does not supervise ${link}; is runsvdir running? Run kraftwerk setup-node`} >&2; exit 1; }; sleep 0.1; done
  ${reload}${log}
fi
${waitForSocketCommand(site.paths.socket, wait, sh`tail -n 20 ${`${site.paths.logs}/current`} >&2 || true`)}`;
}

/** Stop the site's service (gracefully, bounded), take it out of runsvdir and remove its definition. */
export function removeServiceCommand(site: Site): Command {
  const link = serviceLink(site);
  const dir = serviceDefinitionDir(site);
  return sh`if [ -e ${link} ] || [ -L ${link} ]; then
  sv -w 30 force-stop ${link} >/dev/null 2>&1 || true
  rm -f ${link}
fi
if [ -d ${dir} ]; then
  sv exit ${dir} ${`${dir}/log`} >/dev/null 2>&1 || true
  i=0; while pgrep -f ${`^runsv ${site.service}$`} >/dev/null && [ "$i" -lt 50 ]; do i=$((i+1)); sleep 0.1; done
  rm -rf ${dir}
  echo 'kraftwerk: removed'
fi`;
}

export default definePlugin({
  name: PLUGIN_NAME,
  description: 'runit service per site (uWSGI as the site user, svlogd logs); start or graceful reload',
  apply(hooks: Hooks, site: Site) {
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add(PLUGIN_NAME, 'runit');
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

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'runit service',
        run: async (ctx, task) => {
          for (const file of await renderRunitService(site)) ctx.files.add(file);
          task.title(`runit service ${site.service}`);
        },
      });
    });

    hooks.restart.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: `start or reload ${site.service}`,
        stage: Stage.RELOAD,
        run: async (ctx, task) => {
          const dir = serviceDefinitionDir(site);
          const { stdout } = await ctx.remote.exec(
            startOrReloadCommand(site, {
              restart: ctx.files.changed.has(`${dir}/run`),
              restartLog: ctx.files.changed.has(`${dir}/log/run`),
            }),
          );
          const what = /kraftwerk: (started|reloaded|restarted)/.exec(stdout)?.[1] ?? 'reloaded';
          task.title(`${site.service} ${what}`);
        },
      });
    });

    // The environment or the data changed outside a deploy: a graceful reload re-reads the envdir.
    hooks.reload.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: `reload ${site.service}`,
        stage: Stage.RELOAD,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(startOrReloadCommand(site, { restart: false, restartLog: false }));
          task.title(`${site.service} ${/kraftwerk: (started|reloaded)/.exec(stdout)?.[1] ?? 'reloaded'}`);
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: `remove runit service ${site.service}`,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(removeServiceCommand(site));
          task.title(stdout.includes('kraftwerk: removed') ? `removed runit service ${site.service}` : `runit service ${site.service} (none)`);
        },
      });
    });
  },
});
