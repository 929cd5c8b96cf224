/**
 * uwsgi: the site's uWSGI configuration. One master per site with a unix socket
 * in /run/kraftwerk that only nginx's group can open; runit runs it (see the
 * runit plugin), nginx talks to the socket (see the nginx plugin).
 */
import {
  type Command,
  definePlugin,
  KraftwerkError,
  raw,
  RemoteCommandError,
  renderTemplate,
  sh,
  SITES_DIR,
  Stage,
  type Hooks,
  type RemoteFile,
  type Site,
} from '../../core/index.ts';

const PLUGIN_NAME = 'uwsgi';

/** Where a site's uWSGI ini lives: core's site layout (runit starts uWSGI with it). */
export function uwsgiIniPath(site: Site): string {
  return site.paths.uwsgiIni;
}

/** The envdir uWSGI loads the site's environment from. */
export function uwsgiEnvDir(site: Site): string {
  return `${SITES_DIR}/${site.name}/env`;
}

/** The ini of the throwaway instance that checks a new release before it goes live. */
export function preflightIniPath(site: Site): string {
  return `${SITES_DIR}/${site.name}/preflight.ini`;
}

export function preflightSocket(site: Site): string {
  return `/run/kraftwerk/${site.name}.preflight.sock`;
}

export interface UwsgiIniOptions {
  /** Socket nginx connects to; default the site's socket. */
  socket?: string;
  /** Folder the app runs in; default `current`, so the ini does not change between releases. */
  chdir?: string;
  /** The venv; default `current/.venv`, the symlink each release carries to its own venv. */
  venv?: string;
  /** Worker processes; default `workers:` from kraftwerk.yaml. */
  workers?: number;
  /** Load the envdir (default true). Off while the site has no variable at all: uWSGI refuses a missing envdir. */
  envdir?: boolean;
}

export async function renderUwsgiIni(site: Site, options: UwsgiIniOptions = {}): Promise<string> {
  return renderTemplate(new URL('./templates/uwsgi.ini.ejs', import.meta.url), {
    site,
    socket: options.socket ?? site.paths.socket,
    chdir: options.chdir ?? site.paths.current,
    venv: options.venv ?? `${site.paths.current}/.venv`,
    envdir: options.envdir === false ? undefined : uwsgiEnvDir(site),
    workers: options.workers ?? site.config.workers,
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

/**
 * Speaks the uwsgi protocol to a socket: GET `path` with `host` as Host header;
 * prints the HTTP status (nothing when the app gave no answer).
 */
const UWSGI_GET = `import socket, struct, sys
sock, host, path, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
p, _, q = path.partition('?')
env = {'REQUEST_METHOD': 'GET', 'PATH_INFO': p, 'QUERY_STRING': q, 'REQUEST_URI': path, 'SERVER_NAME': host, 'HTTP_HOST': host,
       'SERVER_PORT': '80', 'SERVER_PROTOCOL': 'HTTP/1.1', 'REMOTE_ADDR': '127.0.0.1', 'UWSGI_SCHEME': 'http'}
body = b''.join(struct.pack('<H', len(k)) + k.encode() + struct.pack('<H', len(v.encode())) + v.encode() for k, v in env.items())
s = socket.socket(socket.AF_UNIX)
s.settimeout(timeout)
s.connect(sock)
s.sendall(struct.pack('<BHB', 0, len(body), 0) + body)
data = b''
while b'\\r\\n' not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b' ')[1].decode() if data.startswith(b'HTTP/') else '')`;

export interface PreflightOptions {
  /** Health check request, or none to check only that the app loads. */
  health?: { host: string; path: string; statuses: string[]; timeoutSeconds: number };
  /** Seconds to wait for the instance's socket. */
  startSeconds?: number;
}

/**
 * Start the new release in a throwaway uWSGI (preflight.ini: its own socket,
 * the release's folder and venv, one worker, the site's user and environment)
 * and ask it the health check path. The live release keeps serving meanwhile;
 * a release that does not load or answers badly never goes live. The instance
 * runs in its own session and is ended with KILL to the whole group, master and
 * worker at once: it served nothing but the check, and uWSGI's own shutdown
 * takes a second (its master checks its workers once a second). Its socket
 * file stays; the next preflight removes it first. On failure the instance's
 * log tail (the traceback) goes to stderr.
 */
export function preflightCommand(site: Site, options: PreflightOptions = {}): Command {
  const socket = preflightSocket(site);
  const tries = Math.max(1, Math.round((options.startSeconds ?? 30) * 5));
  const h = options.health;
  const check = h
    ? sh`status=$(python3 -c ${UWSGI_GET} ${socket} ${h.host} ${h.path} ${h.timeoutSeconds} 2>/dev/null) || status=
case "$status" in ${raw(h.statuses.join('|'))}) echo "kraftwerk: preflight $status";;
  *) echo ${`kraftwerk: GET ${h.path} (Host: ${h.host}) on the new release answered`} "\${status:-nothing}" >&2; tail -n 30 "$log" >&2; exit 1;;
esac`
    : sh`echo 'kraftwerk: preflight started'`;
  return sh`log=$(mktemp); pid=
trap 'if [ -n "$pid" ]; then { kill -KILL -"$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null; }; wait "$pid" 2>/dev/null; fi; rm -f "$log"' EXIT
install -d -m 0755 /run/kraftwerk
rm -f ${socket}
setsid env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 /usr/bin/uwsgi --ini ${preflightIniPath(site)} >"$log" 2>&1 &
pid=$!
i=0; ready=
while [ "$i" -lt ${tries} ] && kill -0 "$pid" 2>/dev/null; do
  if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' ${socket} 2>/dev/null; then ready=1; break; fi
  i=$((i+1)); sleep 0.2
done
if [ -z "$ready" ]; then echo 'kraftwerk: the new release did not start:' >&2; tail -n 30 "$log" >&2; exit 1; fi
${check}`;
}

/** The health check of kraftwerk.yaml as a preflight request (statuses as shell patterns). */
export function preflightHealth(site: Site): PreflightOptions['health'] {
  const hc = site.config.healthcheck;
  if (hc === false) return undefined;
  const statuses = hc.status === undefined ? ['2??', '3??'] : [hc.status].flat().map(String);
  // The first request also waits for the app to load.
  return { host: site.canonicalDomain, path: hc.path, statuses, timeoutSeconds: hc.timeout + 30 };
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
          const envFiles = uwsgiEnvFiles(site, ctx.env, ctx.facts.env);
          const envdir = envFiles.length > 0;
          ctx.files.add({ path: uwsgiIniPath(site), content: await renderUwsgiIni(site, { envdir }), mode: 0o640, owner: 'root', group: site.user });
          for (const file of envFiles) ctx.files.add(file);
          ctx.files.add({
            path: preflightIniPath(site),
            content: await renderUwsgiIni(site, { socket: preflightSocket(site), chdir: ctx.release.path, venv: ctx.release.venv, workers: 1, envdir }),
            mode: 0o640,
            owner: 'root',
            group: site.user,
          });
          task.title(`uWSGI configuration (${site.config.workers} workers, ${Object.keys(ctx.env).length} environment variables)`);
        },
      });
      tasks.add({
        title: 'preflight: start the new release beside the live one',
        // After the release commands (migrations) ran, before `current` switches.
        stage: Stage.AFTER_FILES + 60,
        run: async (ctx, task) => {
          try {
            const { stdout } = await ctx.remote.exec(preflightCommand(site, { health: preflightHealth(site) }));
            const status = /kraftwerk: preflight (\S+)/.exec(stdout)?.[1];
            task.title(`preflight: the new release ${status && status !== 'started' ? `answers ${status}` : 'starts'}`);
          } catch (err) {
            if (!(err instanceof RemoteCommandError)) throw err;
            throw new KraftwerkError(`the new release of ${site.name} failed its preflight on ${ctx.node}; the live release keeps serving:\n${err.stderr.trim()}`, {
              hint: `Fix the error above and deploy again. The release's own log: ${site.paths.logs}/current after it runs.`,
            });
          }
        },
      });
    });

    // `kraftwerk env set/unset`: the envdir follows; runit's reload task makes uWSGI re-read it.
    hooks.reload.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uWSGI environment',
        run: async (ctx) => {
          const envFiles = uwsgiEnvFiles(site, ctx.env, ctx.previousEnv);
          for (const file of envFiles) ctx.files.add(file);
          // The first variable of a site that had none: the ini starts loading the envdir.
          const ini = await renderUwsgiIni(site, { envdir: envFiles.length > 0 });
          ctx.files.add({ path: uwsgiIniPath(site), content: ini, mode: 0o640, owner: 'root', group: site.user });
        },
      });
    });
  },
});
