import { type NodeContext, type NodeProbe, type RemoteFile, type Script, quote, raw, sh, type Site, type SiteService, siteEnvScript, siteWebGroup } from '../../core/index.ts';

/**
 * runit services of a site besides its web service: worker processes
 * (`processes:`), and the commands that start, restart, list and remove them.
 * Shared here because several commands (deploy, env, load, destroy, status)
 * act on the same services.
 */

/** Folder runsvdir watches; services are linked into it. */
export const RUNIT_SERVICE_DIR = '/etc/service';
/** Where service definitions live. */
export const RUNIT_SV_DIR = '/etc/sv';

/**
 * A file in each worker service's folder naming the site it belongs to. Service
 * names alone are ambiguous (process `api` of site `shop` and the web service
 * of a site called `shop-api` are both kraftwerk-shop-api); removal goes by this.
 */
export const SITE_MARKER_FILE = 'kraftwerk-site';

/**
 * The groups a process of the site runs with, for `chpst -u` (which sets exactly
 * these, no supplementary groups of the user): its own, and its web group, without
 * which it cannot enter /srv/<site>.
 */
export function siteProcessGroups(site: Site): string {
  return `${site.user}:${site.user}:${siteWebGroup(site)}`;
}

/** runit service name of a worker process: kraftwerk-<site>-<process>. */
export function processServiceName(site: Site, process: string): string {
  return `${site.service}-${process}`;
}

/** svlogd folder of a worker process: /var/log/kraftwerk/<site>/<process>/ (the web service logs into the site's folder itself). */
export function processLogDir(site: Site, process: string): string {
  return `${site.paths.logs}/${process}`;
}

/**
 * Shell syntax that keeps a command from being a single program run with
 * arguments. A simple command is started with `exec`, so runit's TERM reaches
 * the program itself and not a shell that would leave it running.
 */
const SHELL_SYNTAX = /[;&|<>()`$\\\n*?[\]{}~'"]|(^|\s)(if|for|while|until|case)(\s|$)/;

export function isSimpleCommand(command: string): boolean {
  return !SHELL_SYNTAX.test(command);
}

/**
 * A command from kraftwerk.yaml as the last step of a script: a simple one is
 * exec'd; anything else runs in a shell of its own, so that `a; b` cannot
 * escape the `&&` chain before it (b would run even when `cd` failed).
 */
export function programCommand(command: string): Script {
  return isSimpleCommand(command) ? raw(`exec ${command}`) : sh`exec sh -c ${command}`;
}

/**
 * The run script of a worker process. Root only starts chpst: the site user
 * then enters the live release (`cd current` resolves the symlink once, so a
 * worker keeps its release until it is restarted), reads its environment
 * (.kraftwerk/env, root:kw-<site> 0640) and runs the command with the
 * release's venv first on PATH. Root reads nothing the site can write, and
 * names chpst by its path (no PATH lookup as root).
 */
export function renderProcessRunScript(site: Site, process: string, command: string): string {
  const script = siteEnvScript(site, { dir: site.paths.current, venv: `${site.paths.current}/.venv`, command: programCommand(command) });
  return `#!/bin/sh
# Kraftwerk: worker process ${process} of site ${site.name}. Written by \`kraftwerk deploy\` when the release goes live; edits are overwritten.
exec 2>&1
exec /usr/bin/chpst -u ${quote(siteProcessGroups(site))} sh -c ${quote(script.text)}
`;
}

/**
 * The log/run script of a runit service of the site (web slots, workers):
 * svlogd runs as the site user, in a folder the site owns (made at deploy
 * time, see `siteDirsCommand`): its `config` there (a processor, `!…`) runs
 * with the site's rights only. Root does nothing here but start chpst.
 */
export function renderLogRunScript(site: Site, dir: string, what: string): string {
  return `#!/bin/sh
# Kraftwerk: log of ${what} of site ${site.name}, rotated by svlogd as ${site.user}. Written by \`kraftwerk deploy\`.
exec /usr/bin/chpst -u ${quote(`${site.user}:${site.user}`)} svlogd -tt ${quote(dir)}
`;
}

/** The files of a worker process's runit service; written by the switch (see RemoteFile.atSwitch). */
export function processServiceFiles(site: Site, process: string, command: string): RemoteFile[] {
  const dir = `${RUNIT_SV_DIR}/${processServiceName(site, process)}`;
  return [
    { path: `${dir}/run`, content: renderProcessRunScript(site, process, command), mode: 0o755, atSwitch: true },
    { path: `${dir}/log/run`, content: renderLogRunScript(site, processLogDir(site, process), `worker process ${process}`), mode: 0o755, atSwitch: true },
    { path: `${dir}/${SITE_MARKER_FILE}`, content: `${site.name}\n`, mode: 0o644, atSwitch: true },
  ];
}

// ---------------------------------------------------------------- folders the site writes

/**
 * Folders that a site's own processes write (svlogd's log folders, cron's
 * lock files): owned by the site user, each inside a folder only root can
 * change (/var/log/kraftwerk/<site>/, /srv/<site>/shared/), so the site can
 * fill them but never swap one for a symlink. Root makes them at deploy time
 * (`siteDirsCommand`), never at a service start or a cron run; plugins name
 * theirs in their configure taps with `siteDirs(ctx).add(…)`.
 */
export class SiteDirs {
  /** Folder → mode, and the runit service whose svlogd writes it (restarted when its folder had to be made anew). */
  readonly dirs = new Map<string, { mode: number; service?: string }>();
  /** Shell commands run (as root) before the folders are made: one-time clean-ups of an earlier layout. */
  readonly before: Script[] = [];
  constructor(private readonly probe?: NodeProbe) {}
  add(dir: string, options: { mode?: number; service?: string } = {}): this {
    this.dirs.set(dir, { mode: options.mode ?? 0o750, service: options.service });
    this.probe?.exists(dir);
    return this;
  }
}

const SITE_DIRS_STATE = 'runit.siteDirs';

/** The deploy's collector of site-written folders (one per node context). */
export function siteDirs(ctx: NodeContext & { probe?: NodeProbe }): SiteDirs {
  let dirs = ctx.state.get(SITE_DIRS_STATE) as SiteDirs | undefined;
  if (!dirs) ctx.state.set(SITE_DIRS_STATE, (dirs = new SiteDirs(ctx.probe)));
  return dirs;
}

/**
 * Make each folder of `dirs` the site's, refusing any whose parent is not a
 * real folder only root can write (then the site could have swapped the
 * folder between the check and the chown). A symlink or file where a folder
 * belongs is removed, not followed. A folder that still holds files of an
 * earlier root svlogd (Kraftwerk before 0.2 ran it as root) is moved aside
 * within its root-owned parent, to `.<name>.<time>`, and made anew: root
 * never changes anything inside a folder the site can write.
 */
export function siteDirsCommand(site: Site, dirs: SiteDirs): Script {
  const u = site.user;
  const calls = [...dirs.dirs].map(([dir, { mode, service }]) => sh`kw_dir ${dir} ${mode.toString(8).padStart(4, '0')} ${service ?? ''}`);
  return sh`kw_dir() {
  p=$(dirname "$1")
  if [ -L "$p" ] || [ ! -d "$p" ] || [ -n "$(find "$p" -maxdepth 0 \\( ! -user root -o -perm /022 \\) -print)" ]; then
    echo "kraftwerk: $p is not a folder that only root can write; not making $1 in it" >&2; exit 1
  fi
  kw_new=
  if [ -L "$1" ] || { [ -e "$1" ] && [ ! -d "$1" ]; }; then rm -f -- "$1"; kw_new=1; fi
  if [ -d "$1" ] && [ -n "$(find "$1" -mindepth 1 -maxdepth 1 ! -user ${u} -print -quit)" ]; then
    mv -T -- "$1" "$p/.$(basename "$1").$(date -u +%Y%m%dT%H%M%SZ)"; kw_new=1
  fi
  install -d -m "$2" -o ${u} -g ${u} -- "$1" || exit 1
  # A logger that wrote the old folder (or the link's target) moves to the new one.
  if [ -n "$kw_new" ] && [ -n "$3" ] && [ -e ${raw(RUNIT_SERVICE_DIR)}/"$3"/log ]; then sv restart ${raw(RUNIT_SERVICE_DIR)}/"$3"/log >/dev/null 2>&1 || true; fi
}
${raw(dirs.before.map((c) => `${c.text}\n`).join(''))}${raw(calls.map((c) => c.text).join('\n'))}`;
}

/** Prints the names of the site's worker services (found by their marker file), one per line. */
export function listProcessServicesCommand(site: Site): Script {
  return sh`for d in ${RUNIT_SV_DIR}/${raw(quote(site.service))}-*; do
  [ -f "$d/${raw(SITE_MARKER_FILE)}" ] && [ "$(cat "$d/${raw(SITE_MARKER_FILE)}")" = ${site.name} ] && basename "$d"
done; true`;
}

/**
 * Link services into /etc/service (runsvdir starts new ones within 5 s) and
 * restart the ones that were already running, so each runs the live release.
 * Prints `<service>: <sv status>` per service.
 */
export function startOrRestartCommand(services: readonly string[], waitSeconds = 15): Script {
  if (services.length === 0) return raw('true');
  return sh`for s in ${services}; do
  if [ -e ${raw(RUNIT_SERVICE_DIR)}/"$s" ]; then
    sv -w ${waitSeconds} restart ${raw(RUNIT_SERVICE_DIR)}/"$s" >/dev/null 2>&1 || true
  else
    ln -sfn ${raw(RUNIT_SV_DIR)}/"$s" ${raw(RUNIT_SERVICE_DIR)}/"$s"
  fi
done
for s in ${services}; do
  # runsv must supervise the service before sv can talk to it (runsvdir looks every 5 s).
  i=0; until sv status ${raw(RUNIT_SERVICE_DIR)}/"$s" >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 100 ] || break; sleep 0.1; done
  sv -w ${waitSeconds} up ${raw(RUNIT_SERVICE_DIR)}/"$s" >/dev/null 2>&1 || true
  printf '%s: %s\\n' "$s" "$(sv status ${raw(RUNIT_SERVICE_DIR)}/"$s" 2>&1 | head -n 1)"
done`;
}

/** Restart the svlogd of each service in `services` that runsv supervises (after its log/run changed). */
export function restartLoggersCommand(services: readonly string[]): Script {
  if (!services.length) return raw(':');
  return sh`for s in ${services}; do [ -e ${raw(RUNIT_SERVICE_DIR)}/"$s"/log ] && sv restart ${raw(RUNIT_SERVICE_DIR)}/"$s"/log >/dev/null 2>&1; done; true`;
}

/** Restart services that are linked (down ones stay down); used after an environment change. */
export function restartCommand(services: readonly string[], waitSeconds = 15): Script {
  if (services.length === 0) return raw('true');
  return sh`for s in ${services}; do
  [ -e ${raw(RUNIT_SERVICE_DIR)}/"$s" ] || continue
  sv -w ${waitSeconds} restart ${raw(RUNIT_SERVICE_DIR)}/"$s" >/dev/null 2>&1 || true
  printf '%s: %s\\n' "$s" "$(sv status ${raw(RUNIT_SERVICE_DIR)}/"$s" 2>&1 | head -n 1)"
done`;
}

/**
 * Stop services and remove them completely: down (TERM, then KILL after the
 * wait), unlinked (runsvdir then ends their runsv), definitions deleted.
 * Prints `removed <service>` for each that existed.
 */
export function removeServicesCommand(services: readonly string[], waitSeconds = 10): Script {
  if (services.length === 0) return raw('true');
  return sh`for s in ${services}; do
  [ -d ${raw(RUNIT_SV_DIR)}/"$s" ] || [ -e ${raw(RUNIT_SERVICE_DIR)}/"$s" ] || continue
  ${removeServiceInS(waitSeconds)}
done`;
}

/**
 * A site deployed by a Kraftwerk without web slots ran one service named
 * kraftwerk-<site>; once a slot serves, it goes (a step of the switch). (A
 * worker service can have the same name, process `api` of site `shop` for site
 * `shop-api`: workers carry a marker file and are left alone.)
 */
export function removeLegacyServiceCommand(site: Site): Script {
  const dir = `${RUNIT_SV_DIR}/${site.service}`;
  return sh`if [ -d ${dir} ] && [ ! -f ${`${dir}/${SITE_MARKER_FILE}`} ]; then
${removeServicesCommand([site.service], 30)} >/dev/null
fi`;
}

/** Remove the site's worker services whose process is no longer configured; prints `removed <service>` for each. */
export function pruneProcessServicesCommand(site: Site, keep: readonly string[]): Script {
  return sh`for s in $(${listProcessServicesCommand(site)}); do
  case " ${raw(keep.map((k) => quote(processServiceName(site, k))).join(' '))} " in *" $s "*) continue;; esac
  ${removeServiceInS(10)}
done; true`;
}

/** Stop and delete the service named in "$s" (the loop body of remove and prune). */
function removeServiceInS(waitSeconds: number): Script {
  return raw(`if [ -e ${RUNIT_SERVICE_DIR}/"$s" ]; then
    sv -w ${waitSeconds} force-stop ${RUNIT_SERVICE_DIR}/"$s" >/dev/null 2>&1 || true
    sv exit ${RUNIT_SERVICE_DIR}/"$s"/log >/dev/null 2>&1 || true
    rm -f ${RUNIT_SERVICE_DIR}/"$s"
    sv exit ${RUNIT_SV_DIR}/"$s" >/dev/null 2>&1 || true
  fi
  # runsv writes supervise/ until it has exited: removing the folder before would race with it.
  i=0; while pgrep -f "^runsv $s\$" >/dev/null && [ "$i" -lt 50 ]; do i=$((i+1)); sleep 0.1; done
  rm -rf ${RUNIT_SV_DIR}/"$s" || { sleep 0.5; rm -rf ${RUNIT_SV_DIR}/"$s"; }
  echo "removed $s"`);
}

/** State of one runit service, from `sv status`: what `kraftwerk status` shows of a site's service. */
export type ServiceState = SiteService;

/** Parse one line of `sv status`: `run: /etc/service/x: (pid 123) 45s; run: log: (pid 120) 45s`. */
export function parseSvStatus(service: string, line: string): ServiceState {
  const m = /^(run|down|finish|fail|warning): [^:]+: (?:\(pid (\d+)\) )?(\d+)s/.exec(line.trim());
  if (!m) return { service, state: 'unknown', note: line.trim() || undefined };
  const out: ServiceState = { service, state: m[1]!, seconds: Number(m[3]) };
  if (m[2]) out.pid = Number(m[2]);
  const rest = line.trim().slice(m[0].length).split(';')[0]!.trim();
  if (rest) out.note = rest.replace(/^,\s*/, '');
  return out;
}
