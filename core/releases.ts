import { existsSync } from 'node:fs';
import path from 'node:path';
import { renderEnvFile } from './env.ts';
import { KraftwerkError } from './errors.ts';
import type { Hooks } from './hooks.ts';
import { definePlugin } from './plugin.ts';
import { parseProbe, probeCommand, SITES_DIR } from './probe.ts';
import { type Command, raw, sh } from './shell.ts';
import { inSiteEnv } from './site-shell.ts';
import type { Site } from './site.ts';
import { Stage } from './tasks.ts';
import { EnvironmentVars, type NodeContext } from './context.ts';
import { DeployLock } from './lock.ts';

const LOCK_STATE = 'core.lock';

/** Release the deploy lock a command took on this node, if any. */
export async function releaseLock(ctx: NodeContext): Promise<void> {
  const lock = ctx.state.get(LOCK_STATE) as DeployLock | undefined;
  ctx.state.delete(LOCK_STATE);
  await lock?.release().catch(() => undefined);
}

/**
 * Core's own part of a deploy, written as a plugin like any other: checks,
 * the release folder and rsync, the environment file, release commands, the
 * atomic switch of `current` and the health check.
 */

/** Create the site's user and folders. Idempotent; one command. */
export function prepareSiteCommand(site: Site): Command {
  const p = site.paths;
  const u = site.user;
  return sh`id -u ${u} >/dev/null 2>&1 || useradd --system --user-group --home-dir ${p.root} --no-create-home --shell /usr/sbin/nologin ${u}
# nginx reads static files and uploads through the site's group; /srv/<site> is closed to everyone else.
if id -u www-data >/dev/null 2>&1 && ! id -nG www-data | tr ' ' '\\n' | grep -qx ${u}; then usermod -aG ${u} www-data; fi
install -d -m 0750 -o root -g ${u} ${p.root} ${p.releases} ${p.venvs} ${p.shared}
install -d -m 0700 -o root -g root ${p.state} ${p.backups}
install -d -m 0755 -o root -g root /etc/kraftwerk ${SITES_DIR}
install -d -m 0750 -o ${u} -g adm ${p.logs}`;
}

/** Atomically point `current` at a release: a new symlink renamed over the old one. */
export function switchCommand(site: Site, releaseId: string): Command {
  const tmp = `${site.paths.current}.new`;
  return sh`ln -sfn ${`releases/${releaseId}`} ${tmp} && mv -T ${tmp} ${site.paths.current}`;
}

/** Request the site through nginx on the node, with the canonical domain as Host header. */
export function healthCheckCommand(site: Site): Command {
  const hc = site.config.healthcheck;
  if (hc === false) return raw('true');
  const statuses = hc.status === undefined ? ['2??', '3??'] : [hc.status].flat().map(String);
  const url = `http://127.0.0.1${hc.path}`;
  return sh`i=0
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time ${hc.timeout} -H ${`Host: ${site.canonicalDomain}`} ${url})
  case "$code" in ${raw(statuses.join('|'))}) echo "$code"; exit 0;; esac
  i=$((i+1)); if [ "$i" -gt ${hc.retries} ]; then echo "$code"; exit 1; fi
  sleep 1
done`;
}

/** Write the release record, then remove good releases beyond keep_releases (never current or previous). */
export function finishReleaseCommand(site: Site, record: Record<string, unknown>, previous: string | undefined): Command {
  const p = site.paths;
  const keep = site.config.keep_releases;
  const id = String(record.id);
  return sh`install -d -m 0700 ${`${p.state}/releases`} && printf '%s\\n' ${JSON.stringify(record)} > ${`${p.state}/releases/${id}.json`}
cd ${p.releases} && ls -1 | sort -r | grep -vx -e ${id} -e ${previous ?? id} | tail -n +${Math.max(keep - 1, 0) + 1} | while read -r old; do rm -rf -- "$old" ${`${p.state}/releases/`}"$old.json"; done; true`;
}

function wsgiModuleFile(site: Site): string | undefined {
  const rel = site.wsgi.module.replace(/\./g, '/');
  for (const candidate of [`${rel}.py`, `${rel}/__init__.py`]) {
    if (existsSync(path.join(site.sourceDir, candidate))) return candidate;
  }
  return undefined;
}

export const corePlugin = definePlugin({
  name: 'core',
  apply(hooks: Hooks, site: Site) {
    hooks.preSync.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'check project',
        stage: Stage.PREPARE - 100,
        run: () => {
          const req = path.join(site.sourceDir, site.config.requirements);
          if (!existsSync(req)) {
            throw new KraftwerkError(`${site.config.requirements} not found in ${site.sourceDir}`, {
              hint: 'Create it (it may be empty) or point `requirements:` in kraftwerk.yaml at your requirements file.',
            });
          }
          if (!wsgiModuleFile(site)) {
            throw new KraftwerkError(
              `wsgi: module ${site.wsgi.module} not found in ${site.sourceDir} (looked for ${site.wsgi.module.replace(/\./g, '/')}.py)`,
              { hint: 'Set `wsgi:` in kraftwerk.yaml to module[:callable], e.g. app:app or mysite.wsgi.' },
            );
          }
        },
      });
      tasks.add({
        title: 'inspect node',
        stage: Stage.PREPARE,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(probeCommand(site), { readOnly: true });
          ctx.facts = parseProbe(stdout, site);
          if (ctx.remote.dryRun) return task.title('inspect node (dry run: not checked)');
          if (!ctx.facts.setUp) {
            throw new KraftwerkError(`node ${ctx.node} was not set up for Kraftwerk`, {
              hint: `Run: kraftwerk setup-node ${ctx.node}`,
            });
          }
          for (const [other, domains] of Object.entries(ctx.facts.otherSites)) {
            const clash = site.domains.concat(site.aliases).filter((d) => domains.includes(d));
            if (clash.length) {
              throw new KraftwerkError(`domain ${clash.join(', ')} is already used by site ${other} on ${ctx.node}`, {
                hint: `Change domain/aliases in ${path.basename(site.configFile)}, or remove the other site with kraftwerk destroy.`,
              });
            }
          }
          ctx.release.previous = ctx.facts.currentRelease;
          const { lock, tookOverFrom } = await DeployLock.acquire(ctx.remote, site.name, {
            command: 'deploy',
            waitMs: ctx.deploy.lockWaitMs,
            node: ctx.node,
            onWait: (holder) => task.output(`waiting for the deploy lock held by ${holder}`),
          });
          ctx.state.set(LOCK_STATE, lock);
          if (tookOverFrom) ctx.log.warn(`${ctx.node}: took over a stale deploy lock of ${tookOverFrom}`);
          task.title(`inspect node (Python ${ctx.facts.pythonVersion ?? '?'}, live release ${ctx.facts.currentRelease ?? 'none'})`);
        },
      });
    });

    hooks.sync.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'prepare site user and folders',
        stage: Stage.PREPARE,
        run: (ctx) => ctx.remote.exec(prepareSiteCommand(site)).then(() => undefined),
      });
      tasks.add({
        title: 'rsync project',
        run: async (ctx, task) => {
          const { buildRsyncArgs, findRsyncExcludeFile, runRsync } = await import('./transport/rsync.ts');
          const args = buildRsyncArgs({
            target: ctx.remote.target,
            source: site.sourceDir,
            dest: ctx.release.path,
            linkDest: ctx.release.previous ? `${site.paths.releases}/${ctx.release.previous}` : undefined,
            excludes: site.config.exclude,
            excludeFromFile: findRsyncExcludeFile(site.sourceDir),
          });
          if (ctx.remote.dryRun) {
            task.output(`rsync ${args.join(' ')}`);
            ctx.log.info(`[dry-run] ${ctx.node}: rsync ${args.join(' ')}`);
            return;
          }
          const stats = await runRsync(args, (line: string) => task.output(line), ctx.node);
          task.title(`rsync project → releases/${ctx.release.id} (${stats.bytesSent ?? '?'} bytes sent)`);
        },
      });
    });

    hooks.configure.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'environment',
        stage: Stage.PREPARE - 50,
        run: async (ctx, task) => {
          const env = new EnvironmentVars();
          await hooks.environment.promise({ site, node: ctx.node, previous: ctx.facts.env }, env);
          const vars: Record<string, string> = { ...env.toRecord() };
          for (const [k, v] of Object.entries(site.config.environ)) vars[k] = String(v);
          Object.assign(vars, ctx.facts.envLocal);
          ctx.env = vars;
          ctx.files.add({ path: site.paths.env, content: renderEnvFile(vars), mode: 0o640, owner: 'root', group: site.user });
          ctx.files.add({
            path: `${SITES_DIR}/${site.name}/domains`,
            content: `${[...site.domains, ...site.aliases].join('\n')}\n`,
            mode: 0o644,
          });
          task.title(`environment (${Object.keys(vars).length} variables)`);
        },
      });
      tasks.add({
        title: 'write configuration',
        stage: Stage.WRITE_FILES,
        run: async (ctx, task) => {
          const changed = await ctx.remote.syncFiles(ctx.files.all);
          for (const p of changed) ctx.files.changed.add(p);
          task.title(`write configuration (${ctx.files.all.length} files, ${changed.length} changed)`);
        },
      });
      tasks.add({
        title: 'release commands',
        stage: Stage.AFTER_FILES + 50,
        run: async (ctx, task) => {
          // `.venv` in the release names the venv it runs with: cron, workers and `kraftwerk run` use current/.venv.
          await ctx.remote.exec(sh`ln -sfn ${ctx.release.venv} ${`${ctx.release.path}/.venv`}`);
          for (const command of site.config.release) {
            task.output(`$ ${command}`);
            await ctx.remote.exec(inSiteEnv(site, { dir: ctx.release.path, venv: ctx.release.venv, command }), {
              onStdout: (c) => task.output(c),
              onStderr: (c) => task.output(c),
            });
          }
          if (!site.config.release.length) task.title('release commands (none)');
        },
      });
    });

    hooks.restart.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'switch current release',
        stage: Stage.SWITCH,
        run: async (ctx, task) => {
          await ctx.remote.exec(switchCommand(site, ctx.release.id));
          task.title(`switch current → ${ctx.release.id}`);
        },
      });
      tasks.add({
        title: 'health check',
        stage: Stage.VERIFY,
        skip: () => (site.config.healthcheck === false ? 'healthcheck: false' : false),
        run: async (ctx, task) => {
          const hc = site.config.healthcheck as Exclude<typeof site.config.healthcheck, false>;
          const res = await ctx.remote.exec(healthCheckCommand(site), { check: false });
          const code = res.stdout.trim() || 'no answer';
          if (res.code !== 0) {
            throw new KraftwerkError(`health check failed: GET ${hc.path} (Host: ${site.canonicalDomain}) answered ${code}`, {
              hint: `See the site's log: kraftwerk logs ${ctx.node}`,
            });
          }
          task.title(`health check: GET ${hc.path} → ${code}`);
        },
      });
      tasks.add({
        title: 'record release',
        stage: Stage.VERIFY + 100,
        run: async (ctx) => {
          const r = ctx.release;
          const record = { id: r.id, time: new Date().toISOString(), deployer: r.deployer, revision: r.revision, venv: r.venv, status: 'live' };
          await ctx.remote.exec(finishReleaseCommand(site, record, r.previous));
        },
      });
    });
  },
});
