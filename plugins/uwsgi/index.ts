/**
 * uwsgi: the site's uWSGI configuration. One master per site with a unix socket
 * in /run/kraftwerk that only nginx's group can open; runit runs it (see the
 * runit plugin), nginx talks to the socket (see the nginx plugin).
 */
import { definePlugin, renderTemplate, SITES_DIR, Stage, type Hooks, type RemoteFile, type Site } from '../../core/index.ts';

const PLUGIN_NAME = 'uwsgi';

/** Where a site's uWSGI ini lives (not in /srv: only root may change how the site runs). */
export function uwsgiIniPath(site: Site): string {
  return `${SITES_DIR}/${site.name}/uwsgi.ini`;
}

/** The envdir uWSGI loads the site's environment from. */
export function uwsgiEnvDir(site: Site): string {
  return `${SITES_DIR}/${site.name}/env`;
}

export interface UwsgiIniOptions {
  /** Socket nginx connects to; default the site's socket. */
  socket?: string;
  /** Folder the app runs in; default `current`, so the ini does not change between releases. */
  chdir?: string;
  /** The venv; default `current/.venv`, the symlink each release carries to its own venv. */
  venv?: string;
}

export async function renderUwsgiIni(site: Site, options: UwsgiIniOptions = {}): Promise<string> {
  return renderTemplate(new URL('./templates/uwsgi.ini.ejs', import.meta.url), {
    site,
    socket: options.socket ?? site.paths.socket,
    chdir: options.chdir ?? site.paths.current,
    venv: options.venv ?? `${site.paths.current}/.venv`,
    envdir: uwsgiEnvDir(site),
    workers: site.config.workers,
    harakiri: site.config.uwsgi?.harakiri ?? 60,
    maxRequests: site.config.uwsgi?.max_requests ?? 5000,
  });
}

/**
 * The envdir files for `env`. uWSGI strips trailing whitespace and newlines from
 * each value and unsets a variable whose file is empty, so variables that were
 * set before (`previous`) and are gone now get an empty file: a graceful reload
 * then removes them from the app's environment.
 */
export function uwsgiEnvFiles(site: Site, env: Record<string, string>, previous: Record<string, string>): RemoteFile[] {
  const dir = uwsgiEnvDir(site);
  // A name becomes a file name: only real variable names (core validates them; this keeps paths safe regardless).
  const names = new Set([...Object.keys(env), ...Object.keys(previous)].filter((n) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n)));
  return [...names].sort().map((name) => ({
    path: `${dir}/${name}`,
    content: env[name] ?? '',
    mode: 0o640,
    owner: 'root',
    group: site.user,
  }));
}

export default definePlugin({
  name: PLUGIN_NAME,
  description: 'uWSGI ini per site: unix socket, workers, harakiri, the site environment',
  apply(hooks: Hooks, site: Site) {
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, _tasks, packages) => {
      packages.add(PLUGIN_NAME, 'uwsgi', 'uwsgi-plugin-python3');
    });

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uWSGI configuration',
        stage: Stage.DEFAULT,
        run: async (ctx, task) => {
          // Readable by the site's group: after dropping privileges, a graceful reload re-reads both as the site user.
          ctx.files.add({ path: uwsgiIniPath(site), content: await renderUwsgiIni(site), mode: 0o640, owner: 'root', group: site.user });
          for (const file of uwsgiEnvFiles(site, ctx.env, ctx.facts.env)) ctx.files.add(file);
          task.title(`uWSGI configuration (${site.config.workers} workers, ${Object.keys(ctx.env).length} environment variables)`);
        },
      });
    });

    // `kraftwerk env set/unset`: the envdir follows; runit's reload task makes uWSGI re-read it.
    hooks.reload.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uWSGI environment',
        run: async (ctx) => {
          for (const file of uwsgiEnvFiles(site, ctx.env, ctx.previousEnv)) ctx.files.add(file);
        },
      });
    });
  },
});
