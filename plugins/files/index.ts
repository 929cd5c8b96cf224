/**
 * files (service): a folder for files the site writes and nginx serves under
 * /uploads/ (the nginx plugin adds the location when this service is on).
 * Shared by every release, so uploads survive deploys and rollbacks.
 */
import {
  asUser,
  definePlugin,
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
  const dir = site.paths.uploads;
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
  const uploads = site.paths.uploads;
  return sh`if [ -d ${uploads} ]; then tar -czf ${uploadsArchive(dir)} -C ${uploads} .; else tar -czf ${uploadsArchive(dir)} -T /dev/null; fi`;
}

/**
 * Replace the uploads with those of a dump: unpacked beside the live folder,
 * owned by this node's site user (uids differ between nodes) and the web group
 * (`group`: nginx serves them), then swapped in.
 */
export function loadUploadsCommand(site: Site, dir: string, group = siteWebGroup(site)): Script {
  const uploads = site.paths.uploads;
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

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['web', 'worker', 'cron'],
  init: {
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
      env.set('UPLOADS_PATH', site.paths.uploads);
      env.set('SITE_ROOT', site.paths.root);
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      const marker = uploadsFolderMarker(site);
      ctx.probe.read(marker.path).exists(site.paths.uploads);
      tasks.add({
        title: 'uploads folder',
        stage: Stage.PREPARE,
        skip: (c) => (isProvisioned(c.facts, marker) && c.facts.exists.has(site.paths.uploads) ? 'uploads folder (unchanged)' : false),
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(uploadsFolderCommand(site));
          ctx.files.add(marker);
          task.title(stdout.includes('kraftwerk: created') ? `uploads folder ${site.paths.uploads} (created)` : 'uploads folder (unchanged)');
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
