/**
 * What runit adds to `kraftwerk status` (runsvdir for the node; each site's
 * services with their state, and the release of each web slot) and to
 * `kraftwerk logs` (the svlogd logs of the site's web slots, workers and cron jobs).
 */
import { type LogSources, type NodeStatusParts, raw, type Site, type SiteService, sh, Stage } from '../../core/index.ts';
import { parseSvStatus, processLogDir, RUNIT_SERVICE_DIR, RUNIT_SV_DIR, SITE_MARKER_FILE } from './commands.ts';

export function runitStatus(status: NodeStatusParts): void {
  // The supervisor after the daemons on the node line.
  status.process('runsvdir', 'runsvdir', Stage.LATE);
  status.site({
    keys: ['service', 'slot'],
    // A site's services: its web slots (kraftwerk-<site>@…) and the services it marked as its own.
    script: sh`for d in ${raw(RUNIT_SV_DIR)}/kraftwerk-"$s"@* ${raw(RUNIT_SV_DIR)}/kraftwerk-"$s"-*; do
  [ -d "$d" ] || continue
  n=$(basename "$d")
  case "$n" in "kraftwerk-$s"@*) ;; *) [ "$(cat "$d/${raw(SITE_MARKER_FILE)}" 2>/dev/null)" = "$s" ] || continue;; esac
  if [ -e ${raw(RUNIT_SERVICE_DIR)}/"$n" ]; then echo "service $n $(sv status ${raw(RUNIT_SERVICE_DIR)}/"$n" 2>&1 | head -n 1)"; else echo "service $n not linked"; fi
  [ -L "$d/release" ] && echo "slot $n $(basename "$(readlink "$d/release")")"
done`,
    read(key, value, site) {
      if (key === 'service') {
        const [name = '', ...rest] = value.split(' ');
        const text = rest.join(' ');
        site.services.push(text === 'not linked' ? { service: name, state: 'not linked' } : withIntent(parseSvStatus(name, text)));
      } else {
        // A web slot: the release it runs (or last ran).
        const [name = '', release = ''] = value.split(' ');
        const service = site.services.find((x) => x.service === name);
        if (service && release) service.release = release;
      }
    },
  });
}

/**
 * What runsv was told of a service, from the notes of `sv status`: a `down` file makes a
 * running service "normally down" and its absence a stopped one "normally up"; `want up|down`
 * is an order still being carried out. A spare web slot has its `down` file: it is meant to be
 * stopped, and doctor leaves it alone.
 */
export function withIntent(service: SiteService): SiteService {
  const note = service.note ?? '';
  let wanted: SiteService['wanted'];
  if (/\bwant up\b/.test(note)) wanted = 'up';
  else if (/\bwant down\b/.test(note)) wanted = 'down';
  else if (service.state === 'run') wanted = /\bnormally down\b/.test(note) ? 'down' : 'up';
  else if (service.state === 'down' || service.state === 'finish') wanted = /\bnormally up\b/.test(note) ? 'up' : 'down';
  if (!wanted) return service;
  return wanted === 'up' ? { ...service, wanted, start: `sv up ${RUNIT_SERVICE_DIR}/${service.service}` } : { ...service, wanted };
}

/**
 * The site's svlogd logs: one process (`web` is both uWSGI slots; cron jobs are
 * cron-<name>), or all of them. Read as the site user (LogSource.asRoot unset).
 */
export function runitLogs(sources: LogSources, site: Site): void {
  sources.add({
    command(tail, { process }) {
      const logs = site.paths.logs;
      if (process === 'web') {
        // Both web slots: the live release's log and the one before it (or a new one that failed to start).
        return sh`cd ${logs} 2>/dev/null && set -- $(ls -1 web@*/current 2>/dev/null) && [ "$#" -gt 0 ] || { echo ${`kraftwerk: no web log in ${logs} on this node (is the site deployed?)`} >&2; exit 3; }
${tail} "$@"`;
      }
      if (process) {
        const dir = processLogDir(site, process);
        return sh`if [ ! -f ${`${dir}/current`} ]; then
  echo ${`kraftwerk: no log ${dir}/current on this node`} >&2
  echo "logs here: $(cd ${logs} 2>/dev/null && for d in */; do [ -f "$d/current" ] && printf '%s ' "\${d%/}"; done)" >&2
  exit 3
fi
${tail} ${`${dir}/current`}`;
      }
      // Every log of the site: tail prints a ==> file <== header before each.
      return sh`cd ${logs} 2>/dev/null || { echo ${`kraftwerk: no logs in ${logs} (is the site deployed?)`} >&2; exit 3; }
set -- $(ls -1 */current 2>/dev/null)
[ "$#" -gt 0 ] || { echo 'kraftwerk: no logs yet' >&2; exit 3; }
${tail} "$@"`;
    },
  });
}
