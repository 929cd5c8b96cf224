import { type Command, quote, raw, sh } from './shell.ts';
import type { RemoteFile } from './transport/remote.ts';
import { releaseConfig, type Site } from './site.ts';

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
 * The run script of a worker process: root sources the live release's
 * environment (.kraftwerk/env of the release `cd current` went into, root:kw-site 0640), then the command runs as the site user in
 * the live release with the release's venv first on PATH. Root names chpst by its
 * path: with that PATH a `chpst` in the venv's bin/ would run as root. `cd current` resolves
 * the symlink once, so a worker keeps its release until it is restarted.
 */
export function renderProcessRunScript(site: Site, process: string, command: string): string {
  const venv = `${site.paths.current}/.venv`;
  const program = isSimpleCommand(command) ? `exec ${command}` : command;
  return `#!/bin/sh
# Kraftwerk: worker process ${process} of site ${site.name}. Written by \`kraftwerk deploy\`; edits are overwritten.
exec 2>&1
cd ${quote(site.paths.current)} || exit 1
set -a
. ${quote(releaseConfig('.').env)}
set +a
export PATH=${quote(`${venv}/bin`)}:/usr/local/bin:/usr/bin:/bin VIRTUAL_ENV=${quote(venv)} HOME=${quote(site.paths.root)}
exec /usr/bin/chpst -u ${quote(`${site.user}:${site.user}`)} sh -c ${quote(program)}
`;
}

export function renderProcessLogScript(site: Site, process: string): string {
  const dir = processLogDir(site, process);
  return `#!/bin/sh
# Kraftwerk: log of worker process ${process} of site ${site.name}, rotated by svlogd.
install -d -m 0750 -o ${quote(site.user)} -g adm ${quote(site.paths.logs)} ${quote(dir)}
exec chpst -u ${quote(site.user)} svlogd -tt ${quote(dir)}
`;
}

/** The files of a worker process's runit service. */
export function processServiceFiles(site: Site, process: string, command: string): RemoteFile[] {
  const dir = `${RUNIT_SV_DIR}/${processServiceName(site, process)}`;
  return [
    { path: `${dir}/run`, content: renderProcessRunScript(site, process, command), mode: 0o755 },
    { path: `${dir}/log/run`, content: renderProcessLogScript(site, process), mode: 0o755 },
    { path: `${dir}/${SITE_MARKER_FILE}`, content: `${site.name}\n`, mode: 0o644 },
  ];
}

/** Prints the names of the site's worker services (found by their marker file), one per line. */
export function listProcessServicesCommand(site: Site): Command {
  return sh`for d in ${RUNIT_SV_DIR}/${raw(quote(site.service))}-*; do
  [ -f "$d/${raw(SITE_MARKER_FILE)}" ] && [ "$(cat "$d/${raw(SITE_MARKER_FILE)}")" = ${site.name} ] && basename "$d"
done; true`;
}

/**
 * Link services into /etc/service (runsvdir starts new ones within 5 s) and
 * restart the ones that were already running, so each runs the live release.
 * Prints `<service>: <sv status>` per service.
 */
export function startOrRestartCommand(services: readonly string[], waitSeconds = 15): Command {
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

/** Restart services that are linked (down ones stay down); used after an environment change. */
export function restartCommand(services: readonly string[], waitSeconds = 15): Command {
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
export function removeServicesCommand(services: readonly string[], waitSeconds = 10): Command {
  if (services.length === 0) return raw('true');
  return sh`for s in ${services}; do
  [ -d ${raw(RUNIT_SV_DIR)}/"$s" ] || [ -e ${raw(RUNIT_SERVICE_DIR)}/"$s" ] || continue
  ${removeServiceInS(waitSeconds)}
done`;
}

/** Remove the site's worker services whose process is no longer configured; prints `removed <service>` for each. */
export function pruneProcessServicesCommand(site: Site, keep: readonly string[]): Command {
  return sh`for s in $(${listProcessServicesCommand(site)}); do
  case " ${raw(keep.map((k) => quote(processServiceName(site, k))).join(' '))} " in *" $s "*) continue;; esac
  ${removeServiceInS(10)}
done; true`;
}

/** Stop and delete the service named in "$s" (the loop body of remove and prune). */
function removeServiceInS(waitSeconds: number): Command {
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

/** State of one runit service, from `sv status`. */
export interface ServiceState {
  service: string;
  /** run, down, finish, fail, warning, or unknown when sv could not tell. */
  state: string;
  pid?: number;
  /** Seconds in the current state. */
  seconds?: number;
  /** Set when a service is up but was told to be down, or similar notes from sv. */
  note?: string;
  /** A web slot (kraftwerk-<site>@blue|green): the release it runs. */
  release?: string;
}

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
