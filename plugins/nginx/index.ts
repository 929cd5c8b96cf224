/**
 * nginx: one site file per site in sites-available, linked into sites-enabled.
 * Every changed file is tested with `nginx -t` before nginx may load it; a file
 * nginx rejects is replaced by the last one nginx ran with, and the deploy stops.
 */
import {
  type DeployContext,
  definePlugin,
  getSiteTls,
  KraftwerkError,
  nginxValue,
  RemoteCommandError,
  renderTemplate,
  sh,
  Stage,
  type Command,
  type Hooks,
  type Site,
  type SiteTls,
  TLS_APPLY_STAGE,
} from '../../core/index.ts';

const PLUGIN_NAME = 'nginx';

export const NODE_CONF = '/etc/nginx/conf.d/kraftwerk.conf';

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

/** `static:` from kraftwerk.yaml with its defaults: the project's static/ folder at /static/. */
export function staticFiles(site: Site): { url: string; dir: string; expires: string } {
  const conf = site.config.static;
  const folder = typeof conf === 'string' ? conf : (conf?.path ?? 'static');
  const url = typeof conf === 'object' ? conf.url : '/static/';
  const expires = typeof conf === 'object' ? conf.expires : '30d';
  const trimmed = folder.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return {
    url: url.endsWith('/') ? url : `${url}/`,
    dir: `${site.paths.current}/${trimmed}/`,
    expires,
  };
}

/**
 * The site file. With `tls` (published by the tls plugin, core/site-tls.ts):
 * the ACME challenge location on port 80 for every name, and once a certificate
 * exists, the site on 443 with plain HTTP redirecting to https://<canonical>.
 */
export async function renderNginxSite(site: Site, tls?: SiteTls): Promise<string> {
  const harakiri = site.config.uwsgi?.harakiri ?? 60;
  const served = staticFiles(site);
  // Every value computed here is one nginx argument (nginxValue: quoted where needed, never a new directive).
  return renderTemplate(new URL('./templates/site.conf.ejs', import.meta.url), {
    site,
    tls,
    upstream: nginxValue(site.service),
    socket: nginxValue(site.paths.socket),
    clientMaxBodySize: nginxValue(site.config.nginx?.client_max_body_size ?? '10m'),
    staticFiles: { url: nginxValue(served.url), dir: nginxValue(served.dir), expires: nginxValue(served.expires) },
    uploads: site.services.includes('files') ? { url: '/uploads/', dir: nginxValue(`${site.paths.uploads}/`) } : undefined,
    // A little longer than uWSGI's harakiri, so a stuck request ends as uWSGI's error, not a gateway timeout.
    readTimeout: nginxValue(harakiri + 10),
  });
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
export function nginxTestCommand(site: Site): Command {
  const p = nginxSitePaths(site);
  return sh`if [ -L ${p.enabled} ] && cmp -s ${p.available} ${p.previous}; then echo 'kraftwerk: nginx unchanged'; exit 0; fi
ln -sfn ${p.available} ${p.enabled}
if out=$(nginx -t 2>&1); then echo 'kraftwerk: nginx changed'; exit 0; fi
if [ -f ${p.previous} ]; then cp -p ${p.previous} ${p.available}; else rm -f ${p.enabled} ${p.available}; fi
printf '%s\\n' "$out" >&2
exit 1`;
}

/** Reload nginx (start it if it is not running), then remember the file as the one nginx runs with. */
export function nginxReloadCommand(site: Site): Command {
  const p = nginxSitePaths(site);
  return sh`if service nginx status >/dev/null 2>&1; then service nginx reload >/dev/null; else service nginx start >/dev/null; fi && cp -p ${p.available} ${p.previous}`;
}

/** Remove the site from nginx and reload it (when the rest of the config is valid). */
export function nginxRemoveCommand(site: Site): Command {
  const p = nginxSitePaths(site);
  return sh`rm -f ${p.enabled} ${p.available} ${p.previous}
if nginx -t -q 2>/dev/null && service nginx status >/dev/null 2>&1; then service nginx reload >/dev/null; fi`;
}

/** Node setup: drop Debian's default site, check the config, start or reload nginx. Prints its changes. */
export function nginxSetupCommand(options: { confChanged: boolean }): Command {
  const changed = options.confChanged ? sh`changed=1` : sh`changed=`;
  return sh`set -e
${changed}
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
  description: 'nginx site: domains, alias redirects, /static and /uploads, uwsgi_pass to the site socket; nginx -t before reload',
  apply(hooks: Hooks, site: Site) {
    const paths = nginxSitePaths(site);

    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add(PLUGIN_NAME, 'nginx');
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

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      // The file nginx runs with, and whether it is enabled: when it is what this deploy writes, nothing to test or reload.
      ctx.probe.read(paths.previous).exists(paths.enabled);
      tasks.add({
        title: 'nginx site',
        run: async (ctx) => {
          ctx.files.add({ path: paths.available, content: await renderNginxSite(site, getSiteTls(ctx)), mode: 0o644 });
        },
      });
      tasks.add({
        title: 'nginx -t',
        stage: Stage.AFTER_FILES,
        skip: (c) => {
          const written = c.files.all.find((f) => f.path === paths.available);
          const running = c.facts.files.get(paths.previous);
          return written && running === written.content && c.facts.exists.has(paths.enabled) ? 'nginx site (unchanged)' : false;
        },
        run: async (ctx, task) => {
          try {
            const { stdout } = await ctx.remote.exec(nginxTestCommand(site));
            const changed = stdout.includes('kraftwerk: nginx changed');
            ctx.state.set('nginx:reload', changed);
            task.title(changed ? 'nginx -t: new site config is valid' : 'nginx site (unchanged)');
          } catch (err) {
            if (!(err instanceof RemoteCommandError)) throw err;
            throw new KraftwerkError(`nginx rejected the site config ${paths.available} on ${ctx.node}:\n${err.stderr.trim()}`, {
              hint: 'The previous config was put back and nginx was not reloaded. Check the domains and `static:`/`nginx:` settings in kraftwerk.yaml.',
            });
          }
        },
      });
    });

    hooks.restart.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'reload nginx',
        stage: Stage.RELOAD,
        // Tested in configure; a rollback puts back a file that nginx ran with before.
        skip: (ctx) => (ctx.state.get('nginx:reload') || ctx.files.changed.has(paths.available) ? false : 'config unchanged'),
        run: async (ctx) => {
          await ctx.remote.exec(nginxReloadCommand(site));
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
