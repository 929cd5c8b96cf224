import { createHash } from 'node:crypto';
import { type Script, sh } from '../shell/sh.ts';
import { type Site, siteWebGroup } from '../config/site.ts';
import type { RemoteFile } from '../remote/remote.ts';
import { SITES_DIR } from './probe.ts';
import { provisionMarker } from './provisioned.ts';

/**
 * Create the site's user, its web group and its folders. Idempotent; one command.
 * Who may read and write what (root may do anything; "others" get nothing anywhere under /srv/<site>):
 *   /srv/<site>, releases/, shared/   root:kwn-<site> 0750: the site and nginx pass through, nobody writes
 *   releases/<id>/                    see openReleaseCommand (code: root:kw-<site>, not nginx's)
 *   venvs/                            root:kw-<site> 0750: the site reads its packages, nginx never
 *   .kraftwerk/ (state), backups/     root 0700
 *   /var/log/kraftwerk/<site>         the site writes (svlogd runs as the site), adm reads
 * A node deployed by an earlier Kraftwerk had www-data in the site's own group (so nginx could read
 * every site's environment): it leaves that group here, and the folders of the existing releases get
 * what nginx needs in the new layout (rollback targets keep serving). nginx workers keep the groups
 * they started with until nginx reloads, which the deploy does after the switch.
 */
export function prepareSiteCommand(site: Site): Script {
  const p = site.paths;
  const u = site.user;
  const web = siteWebGroup(site);
  const inGroup = (user: string, group: string) => sh`id -nG ${user} | tr ' ' '\n' | grep -qx ${group}`;
  const ids = siteIds(site);
  const taken = (id: number) => sh`getent passwd ${id} >/dev/null || getent group ${id} >/dev/null`;
  return sh`if ! id -u ${u} >/dev/null 2>&1; then
  if ${taken(ids.uid)}; then useradd --system --user-group --home-dir ${p.root} --no-create-home --shell /usr/sbin/nologin ${u}
  else getent group ${u} >/dev/null || groupadd --system --gid ${ids.uid} ${u}; useradd --system --uid ${ids.uid} --gid ${u} --home-dir ${p.root} --no-create-home --shell /usr/sbin/nologin ${u}; fi
fi
if ! getent group ${web} >/dev/null; then
  if ${taken(ids.webGid)}; then groupadd --system ${web}; else groupadd --system --gid ${ids.webGid} ${web}; fi
fi
${inGroup(u, web)} || usermod -aG ${web} ${u}
if id -u www-data >/dev/null 2>&1; then
  ${inGroup('www-data', web)} || usermod -aG ${web} www-data
  if ${inGroup('www-data', u)}; then gpasswd -d www-data ${u} >/dev/null; fi
fi
install -d -m 0750 -o root -g ${web} ${p.root} ${p.releases} ${p.shared}
install -d -m 0750 -o root -g ${u} ${p.venvs}
install -d -m 0700 -o root -g root ${p.state} ${p.backups}
install -d -m 0755 -o root -g root /etc/kraftwerk ${SITES_DIR}
${siteLogRootCommand(site)}
${migrateReleasesCommand(site)}`;
}

/**
 * Releases made by an earlier Kraftwerk: nginx reached them through the site's own group. The
 * folder gets the mode openReleaseCommand gives, `.kraftwerk/` (root's: the site cannot replace
 * an entry of root's in its sticky release folder) the web group; nothing is followed (-h, and
 * only real folders owned by root).
 */
function migrateReleasesCommand(site: Site): Script {
  const web = siteWebGroup(site);
  return sh`for kw_rel in ${site.paths.releases}/*/; do
  kw_rel=\${kw_rel%/}
  [ -d "$kw_rel" ] && [ ! -L "$kw_rel" ] && [ "$(stat -c %U "$kw_rel")" = root ] || continue
  case "$(stat -c %a "$kw_rel")" in 1775) chmod 1771 "$kw_rel";; esac
  kw_own="$kw_rel/.kraftwerk"
  if [ -d "$kw_own" ] && [ ! -L "$kw_own" ] && [ "$(stat -c %U:%G "$kw_own")" = ${`root:${site.user}`} ]; then chgrp -h ${web} "$kw_own"; fi
done`;
}

/**
 * The uid (and gid of its own group) and the gid of the web group a site gets, the same on every
 * node: derived from its name, so the files it writes on a mount several nodes share (uploads on
 * NFS) belong to it, and are readable by its web group, on each. Above the ids of people and of
 * Debian's own users (a collision, unlikely, falls back to useradd's choice).
 */
export function siteIds(site: Site): { uid: number; webGid: number } {
  const h = createHash('sha256').update(site.name).digest().readUInt32BE(0);
  const uid = 2_000_000 + 2 * (h % 500_000);
  return { uid, webGid: uid + 1 };
}

/** What `prepareSiteCommand` made, noted on the node: a deploy skips it while this is there and the folders exist. */
export function preparedSiteMarker(site: Site): RemoteFile {
  return provisionMarker(site, 'site', prepareSiteCommand(site).text);
}

/**
 * The site's log folder, /var/log/kraftwerk/<site>/: root's, open to the site's
 * group (the site's loggers, running as the site, reach their own folders in it), closed
 * to other sites. The site cannot add, remove or swap anything in it. (Before
 * 0.2 it was the site's own; this command, run at every site preparation,
 * takes it back: its parent is root's, so the path cannot be a planted link.)
 */
export function siteLogRootCommand(site: Site): Script {
  return sh`install -d -m 0750 -o root -g ${site.user} ${site.paths.logs}`;
}

/** The folders prepareSiteCommand makes that every deploy needs. */
export function siteFolders(site: Site): string[] {
  const p = site.paths;
  return [p.releases, p.venvs, p.shared, p.state, p.backups, p.logs];
}

/**
 * `.venv` in the release names the venv it runs with: cron, workers and `kraftwerk run`
 * use current/.venv. The release's top folder is the site group's, writable and sticky:
 * release commands (collectstatic) can create folders there, but cannot replace the code root owns.
 * Others get only x: nginx (the only other user that can reach it, through the web group's
 * releases/) passes through to the static folder and `.kraftwerk/uwsgi.sock`, but cannot list the
 * release or read its code (root:kw-<site>, no bits for others: see the rsync task).
 */
export function openReleaseCommand(site: Site, release: { path: string; venv: string }): Script {
  const rel = release.path;
  // A node that runs none of the app (a load balancer, a database node) has no virtualenv: nothing to link.
  const link = release.venv ? sh`ln -sfn ${release.venv} ${`${rel}/.venv`} && ` : sh``;
  return sh`${link}chgrp ${site.user} ${rel} && chmod 1771 ${rel}`;
}
