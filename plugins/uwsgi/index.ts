/**
 * uwsgi: each release's own uWSGI configuration (ini and envdir in the release,
 * see core's `releaseConfig`), and starting a new release beside the live one:
 * one master per release in one of the site's two runit slots (see
 * core/slots.ts), with a unix socket only the site's web group (the site and
 * nginx, see core's `siteWebGroup`) can open. nginx talks
 * to the live release's socket through `current` (see the nginx plugin).
 */
import {
  type Script,
  definePlugin,
  KraftwerkError,
  lifecycleHooks,
  raw,
  RemoteCommandError,
  renderTemplate,
  sh,
  releaseConfig,
  Stage,
  type DeployContext,
  type TaskHandle,
  type Hooks,
  type RemoteFile,
  type Site,
  siteWebGroup,
  settingsOf,
} from '../../core/index.ts';
import { chooseSpareSlot, ensureSlotsCommand, slotDir, SLOTS, socketAcceptsCommand, retireOtherSlotsCommand, stopUnswitchedSlotCommand } from './slots.ts';
import { releaseSocket, releaseUwsgiIni } from './paths.ts';
import { uwsgiIniValue } from './escape.ts';
import { UWSGI_SETTINGS } from './settings.ts';

const PLUGIN_NAME = 'uwsgi';

/** How often the start of a release looks for its socket: it is bound within tens of ms, and a coarser look only adds its own wait. */
const POLL_SECONDS = 0.02;

/** A release's own uWSGI ini: its folder, its venv, its environment and its socket (see `releaseConfig`). */
export async function renderUwsgiIni(site: Site, release: { path: string; venv: string }): Promise<string> {
  const own = releaseConfig(release.path);
  // uWSGI expands %, $( and @( in every value and has no escapes: each value passes uwsgiIniValue (literal, or refused).
  const v = uwsgiIniValue;
  const { workers, uwsgi } = settingsOf(site, UWSGI_SETTINGS);
  return renderTemplate(new URL('./templates/uwsgi.ini.ejs', import.meta.url), {
    site,
    user: v(site.user),
    webGroup: v(siteWebGroup(site)),
    wsgi: { module: v(site.wsgi.module), callable: v(site.wsgi.callable) },
    socket: v(releaseSocket(release.path)),
    chdir: v(release.path),
    venv: v(release.venv),
    envdir: v(own.environ),
    workers: v(workers),
    harakiri: v(uwsgi?.harakiri ?? 60),
    maxRequests: v(uwsgi?.max_requests ?? 5000),
  });
}

/**
 * The envdir files for `env`. uWSGI strips trailing whitespace and newlines from
 * each value and unsets a variable whose file is empty, so variables that were
 * set before (`previous`) and are gone now get an empty file: a graceful reload
 * then removes them from the app's environment.
 */
export function uwsgiEnvFiles(site: Site, dir: string, env: Record<string, string>, previous: Record<string, string>): RemoteFile[] {
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

export interface StartCheck {
  host: string;
  path: string;
  /** Statuses that pass, as shell patterns; `*` takes any answer (the app loaded). */
  statuses: string[];
  timeoutSeconds: number;
}

/**
 * Start `release` in the spare slot (see core/slots.ts) and ask it the health
 * check path through its own socket, while the live release keeps serving.
 * `sv once`: if the instance dies (the app does not load), runsv leaves it
 * down instead of restarting it, so a broken release fails at once; once it
 * answered, `sv up` lets runsv restart it should it crash later. A release
 * that does not start or answers badly is stopped again, never receives
 * traffic, and the tail of its own log (the traceback) goes to stderr.
 * Prints `kraftwerk: <slot> answers <status>`.
 */
export function startReleaseCommand(site: Site, release: { path: string }, check: StartCheck, options: { restartLog?: boolean } = {}): Script {
  const own = releaseConfig(release.path);
  const socket = releaseSocket(release.path);
  // Read as the site user: the log folder is the site's, and root follows no link put there.
  const logTail = sh`sleep 0.3; runuser -u ${site.user} -- tail -n 30 ${site.paths.logs}/web@"$slot"/current >&2 2>/dev/null || true`;
  const stop = sh`sv down "$svc" >/dev/null 2>&1 || true`;
  return sh`${chooseSpareSlot(site)}
# .kraftwerk/: root's; the site and nginx (web group) pass through to the socket. environ/, the ini
# and env inside: root:<site user> 0640, the site reads them, nginx cannot.
install -d -m 0750 -o root -g ${siteWebGroup(site)} ${own.dir}
install -d -m 0750 -o root -g ${site.user} ${own.environ}
${ensureSlotsCommand(site)}
# The spare may still run an earlier release (the one live before the last switch, finishing its requests).
sv -w 30 force-stop "$svc" >/dev/null 2>&1 || true
${options.restartLog ? sh`sv restart "$svc/log" >/dev/null 2>&1 || true
` : sh``}touch "$def/down"
ln -sfn ${release.path} "$def/release"
rm -f ${socket}
sv once "$svc" >/dev/null
# Down after it was seen running means it stopped (runsv may not have started it at the first look).
i=0; ready=; seen=
while [ "$i" -lt ${Math.round(15 / POLL_SECONDS)} ]; do
  if ${socketAcceptsCommand(socket)}; then ready=1; break; fi
  case "$(sv status "$svc")" in run:*) seen=1;; down:*) if [ -n "$seen" ] || [ "$i" -ge ${Math.round(3 / POLL_SECONDS)} ]; then break; fi;; esac
  i=$((i+1)); sleep ${POLL_SECONDS}
done
[ -n "$ready" ] || { ${stop}; echo 'kraftwerk: the new release did not start:' >&2; ${logTail}; exit 1; }
status=$(python3 -c ${UWSGI_GET} ${socket} ${check.host} ${check.path} ${check.timeoutSeconds} 2>/dev/null) || status=
case "$status" in
  '') ;;
  ${raw(check.statuses.join('|'))}) sv up "$svc"; echo "kraftwerk: $slot answers $status"; exit 0;;
esac
${stop}; echo ${`kraftwerk: GET ${check.path} (Host: ${check.host}) on the new release answered`} "\${status:-nothing}" >&2; ${logTail}; exit 1`;
}

/** The health check of kraftwerk.yaml as the request the new release must answer before it goes live. */
export function startCheck(site: Site): StartCheck {
  const hc = site.config.healthcheck;
  // The first request also waits for the app to load.
  if (hc === false) return { host: site.canonicalDomain, path: '/', statuses: ['*'], timeoutSeconds: 60 };
  const statuses = hc.status === undefined ? ['2??', '3??'] : [hc.status].flat().map(String);
  return { host: site.canonicalDomain, path: hc.path, statuses, timeoutSeconds: hc.timeout + 30 };
}

/** Set once this node's new release runs in its slot and answered. */
const STARTED_STATE = 'uwsgi.started';

async function startRelease(ctx: DeployContext, task: TaskHandle, site: Site): Promise<void> {
  try {
    // A new log/run (written for both slots at once) is applied when the slot's logger restarts.
    const restartLog = SLOTS.some((slot) => ctx.files.changed.has(`${slotDir(site, slot)}/log/run`));
    const { stdout } = await ctx.remote.exec(startReleaseCommand(site, ctx.release, startCheck(site), { restartLog }));
    const m = /kraftwerk: (\S+) answers (\S+)/.exec(stdout);
    ctx.state.set(STARTED_STATE, true);
    task.title(`start ${ctx.release.id} beside the live release${m ? ` (${site.service}@${m[1]}: ${m[2]})` : ''}`);
  } catch (err) {
    if (!(err instanceof RemoteCommandError)) throw err;
    throw new KraftwerkError(`release ${ctx.release.id} of ${site.name} failed to start on ${ctx.node}; the live release keeps serving:\n${err.stderr.trim()}`, {
      hint: `Fix the error above and deploy again. The slot's log: kraftwerk logs ${ctx.node} --process web`,
    });
  }
}

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['web'],
  init: { examples: () => ({ workers: 4, uwsgi: { harakiri: 60, max_requests: 5000 } }) },
  description: 'uWSGI ini per site: unix socket, workers, harakiri, the site environment',
  settings: UWSGI_SETTINGS,
  apply(hooks: Hooks, site: Site) {
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, _tasks, packages) => {
      packages.add('uwsgi', 'uwsgi-plugin-python3');
    });

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uWSGI configuration',
        stage: Stage.DEFAULT,
        run: async (ctx, task) => {
          // In the release (see releaseConfig); readable by the site's group: a graceful reload re-reads both as the site user.
          const own = releaseConfig(ctx.release.path);
          ctx.files.add({ path: releaseUwsgiIni(ctx.release.path), content: await renderUwsgiIni(site, ctx.release), mode: 0o640, owner: 'root', group: site.user });
          for (const file of uwsgiEnvFiles(site, own.environ, ctx.env, {})) ctx.files.add(file);
          task.title(`uWSGI configuration (${settingsOf(site, UWSGI_SETTINGS).workers} workers, ${Object.keys(ctx.env).length} environment variables)`);
        },
      });
      tasks.add({
        title: 'start the new release beside the live one',
        // After the release commands (migrations) ran; every node of a group gets here before any switches.
        stage: Stage.AFTER_FILES + 60,
        run: (ctx, task) => startRelease(ctx, task, site),
      });
    });

    // A rollback runs only the restart phase: the release it brings back starts here.
    hooks.restart.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'start the release beside the live one',
        stage: Stage.SWITCH - 50,
        skip: (ctx) => (ctx.state.get(STARTED_STATE) ? true : false),
        run: (ctx, task) => startRelease(ctx, task, site),
      });
    });

    // In the switch's own command, the slot that served before is told to stop (the new one is the one a reboot
    // starts); a release that never went live has its slot stopped by the undo.
    lifecycleHooks(hooks).switch.tap(PLUGIN_NAME, (ctx, steps) => {
      steps.afterSwitch(retireOtherSlotsCommand(site, ctx.release.path));
      steps.onUndo(stopUnswitchedSlotCommand(site, ctx.release.path));
    });

    // `kraftwerk env set/unset`: the live release's envdir follows; runit's reload task makes uWSGI re-read it.
    hooks.reload.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uWSGI environment',
        run: async (ctx) => {
          for (const file of uwsgiEnvFiles(site, releaseConfig(site.paths.current).environ, ctx.env, ctx.previousEnv)) ctx.files.add(file);
        },
      });
    });
  },
});
