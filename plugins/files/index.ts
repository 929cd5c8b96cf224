/**
 * files (service): a folder for files the site writes and nginx serves under
 * /uploads/ (the nginx plugin adds the location when this service is on).
 * Shared by every release, so uploads survive deploys and rollbacks.
 */
import {
  asUser,
  ConfigError,
  definePlugin,
  hasRole,
  nodesWithRole,
  failureReason,
  isProvisioned,
  KraftwerkError,
  provisionMarker,
  sh,
  siteWebGroup,
  Stage,
  type Script,
  type Hooks,
  type RemoteFile,
  type Site,
} from '../../core/index.ts';

import { sharedUploadsMount, uploadsDir } from './paths.ts';
import { FILES_SETTINGS } from './settings.ts';

const PLUGIN_NAME = 'files';

/**
 * The uploads folder: owned by the site user (it writes there), group the site's
 * web group (the site and nginx, see `siteWebGroup`) with setgid, so what the site
 * writes is readable by nginx (uWSGI's umask 027 keeps the group's read bit) and
 * by no other site. nginx serves it without following symlinks (see the nginx
 * plugin): a link the site puts here never reaches a file outside. Prints
 * `kraftwerk: created` when it made the folder.
 *
 * An earlier Kraftwerk made it `<site>:<site>` 0750, with nginx in the site's own
 * group; that is fixed here: the folder by root (shared/ is root's, so the site
 * cannot have swapped it for a link; -h changes a link itself anyway), what is
 * inside by the site user itself (its own files; root follows nothing the site wrote).
 */
export function uploadsFolderCommand(site: Site): Script {
  const dir = uploadsDir(site);
  const web = siteWebGroup(site);
  return sh`if [ -d ${dir} ] && [ ! -L ${dir} ]; then
  chown -h ${`${site.user}:${web}`} ${dir} && chmod 2750 ${dir}
  ${asUser(site.user, sh`find ${dir} -mindepth 1 -user ${site.user} ! -group ${web} -exec chgrp -h ${web} {} + && find ${dir} -mindepth 1 -type d -user ${site.user} ! -perm -2000 -exec chmod g+s {} +`)} || echo 'kraftwerk: some uploads could not be given to the web group (nginx cannot serve them)' >&2
else
  install -d -m 2750 -o ${site.user} -g ${web} ${dir} && echo 'kraftwerk: created'
fi`;
}

/** What uploadsFolderCommand made, noted on the node (see `provisionMarker`). */
export function uploadsFolderMarker(site: Site): RemoteFile {
  return provisionMarker(site, 'uploads', uploadsFolderCommand(site).text);
}

/** The uploads in a dump folder. */
export function uploadsArchive(dir: string): string {
  return `${dir}/uploads.tar.gz`;
}

/** Archive the uploads into a dump folder (an empty archive when there are none yet). */
export function dumpUploadsCommand(site: Site, dir: string): Script {
  const uploads = uploadsDir(site);
  return sh`if [ -d ${uploads} ]; then tar -czf ${uploadsArchive(dir)} -C ${uploads} .; else tar -czf ${uploadsArchive(dir)} -T /dev/null; fi`;
}

/**
 * Replace the uploads with those of a dump: unpacked beside the live folder,
 * owned by this node's site user (uids differ between nodes) and the web group
 * (`group`: nginx serves them), then swapped in.
 */
export function loadUploadsCommand(site: Site, dir: string, group = siteWebGroup(site)): Script {
  const uploads = uploadsDir(site);
  const next = `${uploads}.load-new`;
  const old = `${uploads}.load-old`;
  return sh`set -e
[ -f ${uploadsArchive(dir)} ] || { echo 'kraftwerk: no uploads in this dump'; exit 0; }
rm -rf ${next} ${old}
install -d -m 2750 -o ${site.user} -g ${group} ${next}
tar -xzf ${uploadsArchive(dir)} -C ${next} --no-same-owner
chown -hR ${`${site.user}:${group}`} ${next}
find ${next} -type d -exec chmod g+s {} +
if [ -d ${uploads} ]; then mv -T ${uploads} ${old}; fi
mv -T ${next} ${uploads}
rm -rf ${old}`;
}

/**
 * Prove a dump's uploads archive lists and extracts: unpacked as root into a
 * fresh root-only (0700) folder under /var/tmp that no site can reach, the way
 * `load` unpacks it (GNU tar refuses `..` and absolute member names and defers
 * links that point outside), without the archive's owners and modes; then
 * counted and removed, on every exit. Prints `<files> <KiB>`.
 */
export function verifyUploadsCommand(dir: string): Script {
  const file = uploadsArchive(dir);
  return sh`[ -f ${file} ] || { echo 'the backup has no uploads.tar.gz' >&2; exit 1; }
scratch=$(mktemp -d /var/tmp/kraftwerk-verify.XXXXXX)
trap 'rm -rf -- "$scratch"' EXIT
trap 'exit 130' HUP INT TERM PIPE
tar -tzf ${file} >/dev/null || { echo 'uploads.tar.gz does not list' >&2; exit 1; }
tar -xzf ${file} -C "$scratch" --no-same-owner --no-same-permissions || { echo 'uploads.tar.gz does not extract' >&2; exit 1; }
echo "$(find "$scratch" -mindepth 1 ! -type d | wc -l) $(du -sk "$scratch" | cut -f1)"`;
}

/** The marker a deploy leaves on the shared mount from its first web node, for the others to read. */
function mountMarker(site: Site, releaseId: string): string {
  return `${sharedUploadsMount(site)}/.kraftwerk-shared-${site.name}-${releaseId}`;
}

/**
 * On the first web node: write the marker (release id and node), after removing markers of
 * deploys more than an hour old. Root writes it on the user's mount, which no site can write.
 */
export function writeMountMarkerCommand(site: Site, releaseId: string, node: string): Script {
  const mount = sharedUploadsMount(site)!;
  return sh`[ -d ${mount} ] || { echo ${`${mount} is not a folder on ${node}`} >&2; exit 1; }
find ${mount} -maxdepth 1 -name ${`.kraftwerk-shared-${site.name}-*`} -type f -mmin +60 -delete 2>/dev/null
printf '%s\n' ${`${releaseId} ${node}`} > ${mountMarker(site, releaseId)}`;
}

/** On the other web nodes: the marker must be there with the same words, else it is not the same file system. */
export function readMountMarkerCommand(site: Site, releaseId: string): Script {
  const file = mountMarker(site, releaseId);
  return sh`if [ -f ${file} ] && [ ! -L ${file} ]; then head -c 200 ${file}; fi`;
}

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['web', 'worker', 'cron'],
  settings: FILES_SETTINGS,
  init: {
    examples: () => ({ files: { shared_path: '/mnt/uploads' } }),
    // Django keeps uploads under MEDIA_ROOT.
    detect: ({ framework, settingsModule, read }) => {
      if (framework !== 'django' || !settingsModule) return undefined;
      const base = settingsModule.split('.').join('/');
      const file = read(`${base}.py`) ? `${base}.py` : `${base}/base.py`;
      return /^MEDIA_ROOT\s*=/m.test(read(file)) ? `MEDIA_ROOT in ${file}` : undefined;
    },
  },
  description: 'uploads folder shared by all releases, served by nginx at /uploads/ (UPLOADS_PATH)',
  apply(hooks: Hooks, site: Site) {
    hooks.environment.tap(PLUGIN_NAME, (_ctx, env) => {
      // The original's names.
      env.set('UPLOADS_PATH', uploadsDir(site));
      env.set('SITE_ROOT', site.paths.root);
    });

    hooks.preSync.tap(PLUGIN_NAME, (ctx, tasks) => {
      const webs = nodesWithRole(ctx, 'web');
      if (webs.length < 2) return;
      const mount = sharedUploadsMount(site);
      if (!mount && !ctx.topology.declared) {
        // A group from before roles: each node keeps its own uploads, as it always has; say what that means.
        if (ctx.node === webs[0]!.name) ctx.log.warn(`files: each of ${webs.map((w) => w.name).join(', ')} keeps its own uploads; to share them, set files.shared_path to a mount they all have`);
        return;
      }
      if (!mount) {
        // Refused while the deploy is planned: no node is connected yet, nothing is touched.
        throw new ConfigError(site.configFile, 'files.shared_path', `the uploads (files) would be on each of the ${webs.length} web nodes (${webs.map((w) => w.name).join(', ')}) apart: a file uploaded through one is missing on the others`, {
          hint: 'Mount one file system (NFS, EFS…) on every web node and name it: files: {shared_path: /mnt/uploads}',
        });
      }
      // The first web node writes a marker now (all nodes finish preSync before any goes on); the others read it in configure.
      if (ctx.node !== webs[0]!.name || !hasRole(ctx, 'web')) return;
      tasks.add({
        title: `shared uploads mount ${mount}`,
        stage: Stage.LATE,
        run: async (c) => {
          await c.remote.exec(writeMountMarkerCommand(site, c.release.id, c.node));
        },
      });
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      const webs = nodesWithRole(ctx, 'web');
      if (webs.length > 1 && sharedUploadsMount(site) && hasRole(ctx, 'web') && ctx.node !== webs[0]!.name) {
        tasks.add({
          title: 'same uploads mount as the first web node',
          stage: Stage.PREPARE - 10,
          run: async (c, task) => {
            const { stdout } = await c.remote.exec(readMountMarkerCommand(site, c.release.id));
            const expected = `${c.release.id} ${webs[0]!.name}`;
            if (stdout.trim() !== expected) {
              throw new KraftwerkError(`${sharedUploadsMount(site)} on ${c.node} is not the file system ${webs[0]!.name} has there: the marker ${webs[0]!.name} wrote is ${stdout.trim() ? 'different' : 'missing'}`, {
                hint: `Mount the same shared file system at ${sharedUploadsMount(site)} on every web node (check with: mount | grep ${sharedUploadsMount(site)}). Nothing was switched.`,
              });
            }
            task.title(`same uploads mount as ${webs[0]!.name} (${sharedUploadsMount(site)})`);
          },
        });
      }
      const marker = uploadsFolderMarker(site);
      ctx.probe.read(marker.path).exists(uploadsDir(site));
      tasks.add({
        title: 'uploads folder',
        stage: Stage.PREPARE,
        skip: (c) => (isProvisioned(c.facts, marker) && c.facts.exists.has(uploadsDir(site)) ? 'uploads folder (unchanged)' : false),
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(uploadsFolderCommand(site));
          ctx.files.add(marker);
          task.title(stdout.includes('kraftwerk: created') ? `uploads folder ${uploadsDir(site)} (created)` : 'uploads folder (unchanged)');
        },
      });
    });

    hooks.dump.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uploads',
        // A snapshot before migrations holds only what migrations change: the database.
        skip: (ctx) => (ctx.kind === 'snapshot' ? 'not part of a pre-migration snapshot' : false),
        run: async (ctx) => {
          await ctx.remote.exec(dumpUploadsCommand(site, ctx.dir));
        },
      });
    });

    hooks.verify.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uploads',
        run: async (ctx, task) => {
          const res = await ctx.remote.exec(verifyUploadsCommand(ctx.dir), { check: false });
          if (res.code !== 0) {
            throw new KraftwerkError(`uploads: the archive does not extract (${failureReason(res)})`);
          }
          const [files = '0', kb = '0'] = res.stdout.trim().split(/\s+/);
          task.title(`uploads: extracted into a scratch folder, ${files} file${files === '1' ? '' : 's'}, ${kb} KiB`);
        },
      });
    });

    hooks.load.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uploads',
        skip: (ctx) => (ctx.kind === 'snapshot' ? 'not part of a pre-migration snapshot' : false),
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(loadUploadsCommand(site, ctx.dir));
          task.title(stdout.includes('no uploads in this dump') ? 'uploads (none in this dump)' : 'uploads restored');
        },
      });
    });
  },
});
