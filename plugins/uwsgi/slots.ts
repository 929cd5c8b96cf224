/**
 * Blue/green: a site's web service is two runit services, slots, that take
 * turns. The live release runs in one; a deploy starts the new release in the
 * other (the spare), checks it while the live one keeps serving, and switching
 * `current` hands traffic to it (nginx connects through `current` to the
 * release's own socket, see `releaseConfig`). The old slot then gets TERM,
 * finishes its requests in flight and stays down. The app is loaded once per
 * deploy, in the instance that was checked, and no request waits for a reload.
 *
 * Each slot's folder has a `release` link naming the release it runs, and a
 * `down` file unless it is the live one, so that a reboot starts only the slot
 * that serves `current`.
 */
import { RUNIT_SERVICE_DIR, RUNIT_SV_DIR } from '../runit/commands.ts';
import { type Script, quote, raw, sh, type Site } from '../../core/index.ts';
import { releaseUwsgiIni } from './paths.ts';

export const SLOTS = ['blue', 'green'] as const;
export type Slot = (typeof SLOTS)[number];

/** runit service of a slot: kraftwerk-<site>@blue. (`@` cannot occur in a site or process name.) */
export function slotService(site: Site, slot: Slot): string {
  return `${site.service}@${slot}`;
}

export function slotDir(site: Site, slot: Slot): string {
  return `${RUNIT_SV_DIR}/${slotService(site, slot)}`;
}

/** The link in the slot's folder to the release it runs. */
export function slotReleaseLink(site: Site, slot: Slot): string {
  return `${slotDir(site, slot)}/release`;
}

/** svlogd folder of a slot: the new release's log is its own, apart from the live one's. */
export function slotLogDir(site: Site, slot: Slot): string {
  return `${site.paths.logs}/web@${slot}`;
}

/** The ini a slot runs: its release's own, reached through the slot's link (a graceful reload re-reads it). */
export function slotIni(site: Site, slot: Slot): string {
  return releaseUwsgiIni(slotReleaseLink(site, slot));
}

/**
 * Shell words for the slot named by the shell word `v` (blue, green, or a
 * variable holding one): its service link, its folder, the release it runs
 * (resolved), and stopping it so that a reboot does not start it either.
 */
function slotPaths(site: Site) {
  const service = quote(`${RUNIT_SERVICE_DIR}/${site.service}@`);
  const dir = quote(`${RUNIT_SV_DIR}/${site.service}@`);
  return {
    service: (v: string) => raw(`${service}"${v}"`),
    dir: (v: string) => raw(`${dir}"${v}"`),
    release: (v: string) => raw(`"$(readlink -f ${dir}"${v}"/release 2>/dev/null)"`),
    stop: (v: string) => raw(`touch ${dir}"${v}"/down; sv down ${service}"${v}" >/dev/null 2>&1 || true`),
  };
}

/**
 * Sets $slot to the slot that does not serve `current` (blue when none does)
 * and $svc, $def to its service link and folder.
 */
export function chooseSpareSlot(site: Site): Script {
  const s = slotPaths(site);
  return sh`live=$(readlink -f ${site.paths.current} 2>/dev/null || true)
slot=blue
if [ -n "$live" ] && [ ${s.release('blue')} = "$live" ]; then slot=green; fi
svc=${s.service('$slot')}; def=${s.dir('$slot')}`;
}

/**
 * Sets $svc to the slot that serves `current` (empty when none does: not
 * deployed, or deployed by a Kraftwerk without slots).
 */
export function findLiveSlot(site: Site): Script {
  const s = slotPaths(site);
  return sh`live=$(readlink -f ${site.paths.current} 2>/dev/null || true); svc=
for kw_s in ${[...SLOTS]}; do
  if [ -n "$live" ] && [ ${s.release('$kw_s')} = "$live" ]; then svc=${s.service('$kw_s')}; fi
done`;
}

/**
 * Link both slots into runsvdir (each with its `down` file: linking starts
 * nothing) and wait until runsv supervises $svc. runsvdir looks for new
 * services every 5 seconds, so only a site's first deploy waits here.
 */
export function ensureSlotsCommand(site: Site): Script {
  const s = slotPaths(site);
  return sh`for kw_s in ${[...SLOTS]}; do
  if [ ! -e ${s.service('$kw_s')} ]; then touch ${s.dir('$kw_s')}/down; ln -sfn ${s.dir('$kw_s')} ${s.service('$kw_s')}; fi
done
i=0; until sv status "$svc" >/dev/null 2>&1; do i=$((i+1)); [ "$i" -lt 150 ] || { echo ${`kraftwerk: runsv does not supervise ${site.service}@$slot; is runsvdir running? Run kraftwerk setup-node`} >&2; exit 1; }; sleep 0.1; done`;
}

/**
 * The second half of a switch, in the same command as the rename of
 * `current`: the slot that runs `releasePath` loses its `down` file, every
 * other slot gets one and is told to stop (TERM: it finishes the requests it
 * has, nginx sends it no new ones).
 */
export function retireOtherSlotsCommand(site: Site, releasePath: string): Script {
  const s = slotPaths(site);
  return sh`for kw_s in ${[...SLOTS]}; do
  [ -d ${s.dir('$kw_s')} ] || continue
  if [ ${s.release('$kw_s')} = "$(readlink -f ${releasePath})" ]; then rm -f ${s.dir('$kw_s')}/down
  else ${s.stop('$kw_s')}; fi
done`;
}

/** Stop a slot that runs `releasePath` but does not serve `current` (a deploy that failed before its switch). */
export function stopUnswitchedSlotCommand(site: Site, releasePath: string): Script {
  const s = slotPaths(site);
  return sh`live=$(readlink -f ${site.paths.current} 2>/dev/null || true); rel=$(readlink -f ${releasePath} 2>/dev/null || echo ${releasePath})
for kw_s in ${[...SLOTS]}; do
  [ ${s.release('$kw_s')} = "$rel" ] && [ "$rel" != "$live" ] || continue
  ${s.stop('$kw_s')}
done; true`;
}

/** Succeeds when the unix socket accepts a connection (uWSGI has bound it; requests queue there until the app has loaded). */
export function socketAcceptsCommand(socket: string): Script {
  return sh`python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' ${socket} 2>/dev/null`;
}
