/**
 * nginx: one site file per site in sites-available, linked into sites-enabled.
 * It changes what is live for the site (and a broken one would stop nginx for
 * every site), so a deploy writes it only with the switch (core's
 * `RemoteFile.atSwitch`): a deploy that fails or is killed before leaves the old file,
 * or none on a first deploy. A changed file is tested with `nginx -t` before
 * nginx reloads; a file nginx rejects is replaced by the last one nginx ran
 * with (on a first deploy the site is disabled again), and the deploy fails,
 * which rolls the release back.
 *
 * What nginx may read of a site (see core's `siteWebGroup`): the static folder of
 * the live release, the uploads folder and the uWSGI socket. It follows no symlink
 * below `current` or in the uploads (the site can write both) and serves no path
 * with a dot segment (`.kraftwerk/`, `.git/`, `.env`), except /.well-known/.
 */
import {
  type DeployContext,
  definePlugin,
  KraftwerkError,
  RemoteCommandError,
  renderTemplate,
  sequence,
  sh,
  siteWebGroup,
  Stage,
  type Script,
  type Hooks,
  type Site,
  checkSettings,
  settingsOf,
} from '../../core/index.ts';
import { getSiteTls, type SiteTls, TLS_APPLY_STAGE } from '../tls/state.ts';
import { liveSocket } from '../uwsgi/paths.ts';
import { uploadsDir, uploadsSymlinksFrom } from '../files/paths.ts';
import { nginxValue } from './escape.ts';
import { NGINX_SETTINGS } from './settings.ts';
import { UWSGI_SETTINGS } from '../uwsgi/settings.ts';

const PLUGIN_NAME = 'nginx';

export const NODE_CONF = '/etc/nginx/conf.d/kraftwerk.conf';
/** Read by the deploy's probe: whether nginx's workers must reload to take www-data's new groups. */
const ETC_GROUP = '/etc/group';

export interface NginxSitePaths {
  /** sites-available/kraftwerk-<site>.conf: what the deploy writes. */
  available: string;
  /** The copy of the file nginx last loaded: restored when a new file fails `nginx -t`. */
  previous: string;
  enabled: string;
}

export function nginxSitePaths(site: Site): NginxSitePaths {
  const available = `/etc/nginx/sites-available/${site.service}.conf`;
  return { available, previous: `${available}.prev`, enabled: `/etc/nginx/sites-enabled/${site.service}.conf` };
}

/** nginx's logs of the site (their paths are in templates/site.conf.ejs). */
export function nginxLogFiles(site: Site): string[] {
  return [`/var/log/nginx/${site.service}.access.log`, `/var/log/nginx/${site.service}.error.log`];
}

/** `static:` from kraftwerk.yaml with its defaults: the project's static/ folder at /static/. */
export function staticFiles(site: Site): { url: string; dir: string; expires: string; folder: string } {
  const conf = settingsOf(site, NGINX_SETTINGS).static;
  const folder = typeof conf === 'string' ? conf : (conf?.path ?? 'static');
  const url = typeof conf === 'object' ? conf.url : '/static/';
  const expires = typeof conf === 'object' ? conf.expires : '30d';
  const trimmed = folder.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return {
    url: url.endsWith('/') ? url : `${url}/`,
    dir: `${site.paths.current}/${trimmed}/`,
    expires,
    folder: trimmed,
  };
}

/**
 * Each value the site file takes from kraftwerk.yaml, checked again where it is
 * pasted, with the rules that validated kraftwerk.yaml (NGINX_SETTINGS): one
 * nginx word without quotes, separators, braces or variables; a path without
 * `.`/`..` or dot segments (nothing of the release's `.kraftwerk/` or the code
 * outside the folder can be published).
 */
export function checkNginxValues(site: Site): void {
  checkSettings(site, NGINX_SETTINGS);
}

/**
 * The site file. With `tls` (published by the tls plugin, core/site-tls.ts):
 * the ACME challenge location on port 80 for every name, and once a certificate
 * exists, the site on 443 with plain HTTP redirecting to https://<canonical>.
 */
export async function renderNginxSite(site: Site, tls?: SiteTls): Promise<string> {
  checkNginxValues(site);
  const harakiri = settingsOf(site, UWSGI_SETTINGS).uwsgi?.harakiri ?? 60;
  const served = staticFiles(site);
  // Every value computed here is one nginx argument (nginxValue: quoted where needed, never a new directive).
  return renderTemplate(new URL('./templates/site.conf.ejs', import.meta.url), {
    site,
    tls,
    upstream: nginxValue(site.service),
    socket: nginxValue(liveSocket(site)),
    clientMaxBodySize: nginxValue(settingsOf(site, NGINX_SETTINGS).nginx?.client_max_body_size ?? '10m'),
    staticFiles: { url: nginxValue(served.url), dir: nginxValue(served.dir), expires: nginxValue(served.expires) },
    uploads: site.services.includes('files') ? { url: '/uploads/', dir: nginxValue(`${uploadsDir(site)}/`) } : undefined,
    // Symlinks are checked below these (`current` itself is a link, root's): the site can write in the release and the uploads.
    symlinksFrom: { static: nginxValue(site.paths.current), uploads: nginxValue(uploadsSymlinksFrom(site)) },
    // A little longer than uWSGI's harakiri, so a stuck request ends as uWSGI's error, not a gateway timeout.
    readTimeout: nginxValue(harakiri + 10),
  });
}

/**
 * nginx's workers take www-data's groups when they start: until nginx reloads,
 * they cannot pass through the folders of a site whose web group www-data just
 * joined (a new site, or one deployed by an earlier Kraftwerk, whose own group
 * www-data then leaves: see core's prepareSiteCommand). True when /etc/group,
 * as the deploy found it, does not have www-data in the site's web group only.
 */
export function nginxGroupsOutdated(site: Site, etcGroup: string | undefined): boolean {
  const members = (group: string) => {
    const line = etcGroup?.split('\n').find((l) => l.startsWith(`${group}:`));
    return line ? (line.split(':')[3] ?? '').split(',') : [];
  };
  return !members(siteWebGroup(site)).includes('www-data') || members(site.user).includes('www-data');
}

/**
 * Make a new release's static folder nginx's to read, before anything of the
 * site runs in the release (rsync made it all root's, group the site's own,
 * nothing for others). Who may do what:
 *   folders above it in the release   root:kwn-<site> (web group): nginx passes through and may list
 *                                     them; their files keep the site's own group, closed to nginx
 *   the static folder, from rsync     root's, web group: the site and nginx read, nobody writes
 *   the static folder, missing        made <site>:kwn-<site> 2750: a release command (collectstatic)
 *                                     fills it as the site, and what it writes gets the web group
 * A symlink in the release is left as it is: nginx follows none below `current` (and the site's
 * code is not served through one).
 */
export function staticFolderCommand(site: Site, releasePath: string): Script {
  const { folder, url } = staticFiles(site);
  const web = siteWebGroup(site);
  const parts = folder.split('/');
  // Nothing is changed through a symlink (the project's own could point anywhere).
  const linked = (rel: string) => `kraftwerk: ${rel} is a symlink in the release: nginx does not follow it, ${url} answers 403`;
  const passThrough = parts.slice(0, -1).map((_, i) => {
    const rel = parts.slice(0, i + 1).join('/');
    const a = `${releasePath}/${rel}`;
    return sh`if [ -L ${a} ]; then echo ${linked(rel)} >&2; exit 0; elif [ -d ${a} ]; then chgrp -h ${web} ${a}; else install -d -m 0750 -o root -g ${web} ${a}; fi`;
  });
  const dir = `${releasePath}/${folder}`;
  return sh`${passThrough.length ? sh`${sequence(...passThrough)}
` : sh``}if [ -L ${dir} ]; then echo ${linked(folder)} >&2
elif [ -d ${dir} ]; then chgrp -hR ${web} ${dir}
else install -d -m 2750 -o ${site.user} -g ${web} ${dir}; fi`;
}

export function renderNginxNodeConf(): Promise<string> {
  return renderTemplate(new URL('./templates/kraftwerk.conf.ejs', import.meta.url), {});
}

/**
 * Enable and test the site file when it differs from the one nginx runs with.
 * Prints `kraftwerk: nginx unchanged` or `kraftwerk: nginx changed` (tested,
 * to be reloaded). When `nginx -t` fails, the last good file is put back (on a
 * first deploy the site is disabled again) and nginx's own error is printed.
 */
export function nginxTestCommand(site: Site): Script {
  const p = nginxSitePaths(site);
  return sh`if [ -L ${p.enabled} ] && cmp -s ${p.available} ${p.previous}; then echo 'kraftwerk: nginx unchanged'; exit 0; fi
ln -sfn ${p.available} ${p.enabled}
if out=$(nginx -t 2>&1); then echo 'kraftwerk: nginx changed'; exit 0; fi
if [ -f ${p.previous} ]; then cp -p ${p.previous} ${p.available}; else rm -f ${p.enabled} ${p.available}; fi
printf '%s\\n' "$out" >&2
exit 1`;
}

/** Reload nginx (start it if it is not running), then remember the file as the one nginx runs with. */
export function nginxReloadCommand(site: Site): Script {
  const p = nginxSitePaths(site);
  return sh`if service nginx status >/dev/null 2>&1; then service nginx reload >/dev/null; else service nginx start >/dev/null; fi && cp -p ${p.available} ${p.previous}`;
}

/** Remove the site from nginx and reload it (when the rest of the config is valid). */
export function nginxRemoveCommand(site: Site): Script {
  const p = nginxSitePaths(site);
  return sh`rm -f ${p.enabled} ${p.available} ${p.previous}
if nginx -t -q 2>/dev/null && service nginx status >/dev/null 2>&1; then service nginx reload >/dev/null; fi`;
}

/** Node setup: drop Debian's default site, check the config, start or reload nginx. Prints its changes. */
export function nginxSetupCommand(options: { confChanged: boolean }): Script {
  const changed = options.confChanged ? sh`changed=1` : sh`changed=`;
  return sh`set -e
${changed}
# Each site's access and error log is here; nginx's master (root) creates a new one with its umask,
# often 0644: closed to others, no site reads another's requests. adm (and root) read them.
if [ -n "$(find /var/log/nginx -maxdepth 0 -perm /o=rwx)" ]; then chmod o-rwx /var/log/nginx; echo 'closed /var/log/nginx to other users'; fi
if [ -e /etc/nginx/sites-enabled/default ]; then rm -f /etc/nginx/sites-enabled/default; echo 'removed the default nginx site'; changed=1; fi
nginx -t -q
if service nginx status >/dev/null 2>&1; then
  if [ -n "$changed" ]; then service nginx reload >/dev/null; echo 'reloaded nginx'; fi
else
  service nginx start >/dev/null; echo 'started nginx'
fi`;
}

/**
 * The tls plugin obtained a certificate after the files were written: render,
 * test and reload again. The reload happens even when the file is the same: a
 * certificate re-issued into the same lineage (an added alias) or regenerated
 * (self-signed) replaced the files behind it.
 */
async function applyNewCertificate(ctx: DeployContext, site: Site): Promise<void> {
  const paths = nginxSitePaths(site);
  const file = { path: paths.available, content: await renderNginxSite(site, getSiteTls(ctx)), mode: 0o644 };
  ctx.files.add(file);
  await ctx.remote.syncFiles([file]);
  try {
    await ctx.remote.exec(nginxTestCommand(site));
    await ctx.remote.exec(nginxReloadCommand(site));
  } catch (err) {
    if (!(err instanceof RemoteCommandError)) throw err;
    throw new KraftwerkError(`nginx rejected the site config with the new certificate on ${ctx.node}:\n${err.stderr.trim()}`, {
      hint: 'The previous config was put back; nginx keeps serving it.',
    });
  }
}

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['web'],
  init: { examples: () => ({ static: { path: 'static', url: '/static/', expires: '30d' }, nginx: { client_max_body_size: '10m' } }) },
  description: 'nginx site: domains, alias redirects, /static and /uploads, uwsgi_pass to the site socket; nginx -t before reload',
  nodeStatus: (status) => status.process('nginx', 'nginx'),
  // The site's access and error log (see templates/site.conf.ejs): root's, read as root.
  logs: (sources, site) => sources.add({ flag: 'nginx', asRoot: true, command: (tail) => sh`${tail} ${nginxLogFiles(site)}` }),
  settings: NGINX_SETTINGS,
  apply(hooks: Hooks, site: Site) {
    const paths = nginxSitePaths(site);

    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add('nginx');
      tasks.add({
        title: 'nginx running',
        run: async (ctx, task) => {
          const written = await ctx.remote.syncFiles([{ path: NODE_CONF, content: await renderNginxNodeConf(), mode: 0o644 }]);
          const { stdout } = await ctx.remote.exec(nginxSetupCommand({ confChanged: written.length > 0 }));
          const changes = [...written.map((f) => `wrote ${f}`), ...stdout.split('\n').filter(Boolean)];
          ctx.changes.push(...changes);
          task.title(changes.length ? `nginx: ${changes.join('; ')}` : 'nginx running (unchanged)');
        },
      });
    });

    hooks.preSync.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'check nginx settings',
        stage: Stage.PREPARE - 100,
        run: () => checkNginxValues(site),
      });
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      // The file nginx runs with, and whether it is enabled: when it is what this deploy writes, nothing to test or reload.
      ctx.probe.read(paths.previous, ETC_GROUP).exists(paths.enabled);
      tasks.add({
        title: 'static folder',
        run: async (ctx, task) => {
          const { stderr } = await ctx.remote.exec(staticFolderCommand(site, ctx.release.path));
          for (const line of stderr.split('\n').filter(Boolean)) ctx.log.warn(`${ctx.node}: ${line}`);
          task.title(`static folder ${staticFiles(site).folder}/ (nginx reads it)`);
        },
      });
      tasks.add({
        title: 'nginx site',
        run: async (ctx) => {
          ctx.files.add({ path: paths.available, content: await renderNginxSite(site, getSiteTls(ctx)), mode: 0o644, atSwitch: true });
        },
      });
    });

    hooks.restart.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'reload nginx',
        stage: Stage.RELOAD,
        // The file was written after the switch (or put back by a rollback); nginx runs with it already when it is the one it loaded last.
        skip: (ctx) => {
          const written = ctx.files.all.find((f) => f.path === paths.available);
          const running = ctx.facts.files.get(paths.previous);
          const unchanged = written && running === written.content && ctx.facts.exists.has(paths.enabled) && !ctx.files.changed.has(paths.available);
          return unchanged && !nginxGroupsOutdated(site, ctx.facts.files.get(ETC_GROUP)) ? 'nginx site (unchanged)' : false;
        },
        run: async (ctx, task) => {
          try {
            const { stdout } = await ctx.remote.exec(nginxTestCommand(site));
            const regroup = nginxGroupsOutdated(site, ctx.facts.files.get(ETC_GROUP));
            if (!stdout.includes('kraftwerk: nginx changed') && !regroup) return task.title('nginx site (unchanged)');
          } catch (err) {
            if (!(err instanceof RemoteCommandError)) throw err;
            throw new KraftwerkError(`nginx rejected the site config ${paths.available} on ${ctx.node}:\n${err.stderr.trim()}`, {
              hint: 'The previous config was put back and nginx was not reloaded. Check the domains and `static:`/`nginx:` settings in kraftwerk.yaml.',
            });
          }
          await ctx.remote.exec(nginxReloadCommand(site));
          task.title('nginx -t passed, nginx reloaded');
        },
      });
      tasks.add({
        title: 'nginx with the new certificate',
        stage: TLS_APPLY_STAGE,
        skip: (ctx) => !getSiteTls(ctx)?.reloadNeeded,
        run: async (ctx, task) => {
          await applyNewCertificate(ctx, site);
          task.title('nginx reloaded with the new certificate');
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'remove nginx site',
        // First: no more requests reach the site while its services stop.
        stage: Stage.EARLY,
        run: async (ctx) => {
          await ctx.remote.exec(nginxRemoveCommand(site));
        },
      });
    });
  },
});
