import { existsSync } from 'node:fs';
import path from 'node:path';
import { renderEnvFile } from '../shell/env-file.ts';
import { KraftwerkError, lastLines } from '../errors.ts';
import type { Hooks } from '../engine/hooks.ts';
import { definePlugin } from '../engine/plugin.ts';
import { parseProbe, probeCommand, SITES_DIR } from './probe.ts';
import { isProvisioned, provisionMarker } from './provisioned.ts';
import { type Script, raw, sh } from '../shell/sh.ts';
import { buildSyncFilesCommand } from '../remote/syncfiles.ts';
import { inSiteEnv } from '../shell/site-shell.ts';
import { computeSiteEnvironment, pruneEnvdirCommand, withCurrentSiteVariables } from './site-environment.ts';
import { releaseConfig, type Site, siteWebGroup } from '../config/site.ts';
import { retireOtherSlotsCommand, stopUnswitchedSlotCommand } from '../../plugins/uwsgi/slots.ts';
import { removeServicesCommand, RUNIT_SV_DIR, SITE_MARKER_FILE, siteLogRootCommand } from '../../plugins/runit/commands.ts';
import { getSiteTls } from '../../plugins/tls/state.ts';
import { Stage, type TaskHandle, type TaskSpec } from '../engine/tasks.ts';
import type { DeployContext, NodeContext } from '../engine/context.ts';
import { CommandTimeoutError, type ExecResult, GuardedRemote, type RemoteFile } from '../remote/remote.ts';
import { deployTimeouts } from '../config/durations.ts';
import { interruptOf } from '../engine/interrupt.ts';
import { DeployLock, lockPath } from './lock.ts';

const LOCK_STATE = 'core.lock';
/** Set once `current` points at the new release on a node. */
export const SWITCHED_STATE = 'core.switched';
/** The record a rollback brings back (keeps its deploy time and deployer). */
export const RECORD_STATE = 'core.record';
/** The restart tasks of this node (set by deploy): the record task releases the lock when none after it will run. */
export const RESTART_TASKS_STATE = 'core.restartTasks';
/** Set when release commands did not run: the switch links `.venv` and opens the release folder instead. */
const LINK_AT_SWITCH_STATE = 'core.linkAtSwitch';
const RECORD_STAGE = Stage.VERIFY + 100;

/** Release the deploy lock a command took on this node, if any; false when that failed (it then goes stale). */
export async function releaseLock(ctx: NodeContext): Promise<boolean> {
  const lock = ctx.state.get(LOCK_STATE) as DeployLock | undefined;
  ctx.state.delete(LOCK_STATE);
  return lock ? lock.release().then(() => true, () => false) : true;
}

/** The deploy lock this node context holds (undefined before it was taken, and once it was released). */
export function heldLock(ctx: NodeContext): DeployLock | undefined {
  return ctx.state.get(LOCK_STATE) as DeployLock | undefined;
}

/**
 * Core's own part of a deploy, written as a plugin like any other: checks,
 * the release folder and rsync, the environment file, release commands, the
 * atomic switch of `current` and the health check.
 */


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
  return sh`id -u ${u} >/dev/null 2>&1 || useradd --system --user-group --home-dir ${p.root} --no-create-home --shell /usr/sbin/nologin ${u}
getent group ${web} >/dev/null || groupadd --system ${web}
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

/** What `prepareSiteCommand` made, noted on the node: a deploy skips it while this is there and the folders exist. */
export function preparedSiteMarker(site: Site): RemoteFile {
  return provisionMarker(site, 'site', prepareSiteCommand(site).text);
}

/** The folders prepareSiteCommand makes that every deploy needs. */
function siteFolders(site: Site): string[] {
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
  return sh`ln -sfn ${release.venv} ${`${rel}/.venv`} && chgrp ${site.user} ${rel} && chmod 1771 ${rel}`;
}

/** The line the switch prints once `current` points at the new release (what fails after it does not undo that). */
export const SWITCHED_MARKER = 'kraftwerk: switched';
/** Exit code of a switch that found the deploy lock no longer its own. */
export const LOCK_LOST_EXIT = 75;

/**
 * Atomically point `current` at a release: a new symlink renamed over the old
 * one. That one rename moves code, configuration and traffic (see
 * `releaseConfig`); then the slot that runs the release is marked as the one
 * a reboot starts and the other slots stop. Signals are ignored from the first
 * line on, so a connection that drops now does not leave this half done.
 *
 * Nothing happens unless the deploy lock still holds `lockToken` (a deploy
 * that lost its lock must not switch beside the one that took it over); and
 * when the rename fails, the script stops there with an error: the live slot
 * keeps running and `current` is as it was.
 */
export function switchCommand(site: Site, releaseId: string, lockToken?: string): Script {
  const current = site.paths.current;
  const tmp = `${current}.new`;
  const target = `releases/${releaseId}`;
  const holdsLock = lockToken
    ? sh`grep -q ${lockToken} ${`${lockPath(site.name)}/info`} 2>/dev/null || { echo ${`kraftwerk: the deploy lock of ${site.name} is no longer this command's (another deploy took it over?): nothing was switched`} >&2; exit ${LOCK_LOST_EXIT}; }
`
    : sh``;
  return sh`trap '' HUP INT TERM PIPE
${holdsLock}rm -f ${tmp} 2>/dev/null
if ! { ln -sn ${target} ${tmp} && mv -T ${tmp} ${current} && [ "$(readlink ${current})" = ${target} ]; }; then
  echo ${`kraftwerk: could not point ${current} at ${target} (see above); current and the live slot were left as they were`} >&2
  exit 1
fi
echo ${SWITCHED_MARKER}
${retireOtherSlotsCommand(site, `${site.paths.releases}/${releaseId}`)}
${removeLegacyServiceCommand(site)}`;
}

/**
 * Undo a release that did not go live (a failed or interrupted deploy): its
 * slot stops and, with `remove`, its folder and saved configuration go (a
 * failed release stays until the next deploy, listed as failed, to be looked
 * at). Only while the deploy lock holds `lockToken` (a deploy that lost its
 * lock may not touch what the one that took it over does) and never the
 * release `current` points at. Prints `removed` when the folder went.
 */
export function undoReleaseCommand(site: Site, releaseId: string, lockToken: string, options: { remove: boolean }): Script {
  const rel = `${site.paths.releases}/${releaseId}`;
  const remove = options.remove
    ? sh`
if [ -e ${rel} ] && [ "$(readlink -f ${site.paths.current} 2>/dev/null)" != "$(readlink -f ${rel})" ]; then
  rm -rf -- ${rel} ${releaseFilesPath(site, releaseId)} && echo removed
fi`
    : sh``;
  return sh`grep -q ${lockToken} ${`${lockPath(site.name)}/info`} 2>/dev/null || { echo 'kraftwerk: the deploy lock is not ours: nothing undone' >&2; exit 1; }
${stopUnswitchedSlotCommand(site, rel)}${remove}`;
}

/**
 * A site deployed by a Kraftwerk without web slots ran one service named
 * kraftwerk-<site>; once a slot serves, it goes. (A worker service can have
 * the same name, process `api` of site `shop` for site `shop-api`: workers
 * carry a marker file and are left alone.)
 */
function removeLegacyServiceCommand(site: Site): Script {
  const dir = `${RUNIT_SV_DIR}/${site.service}`;
  return sh`if [ -d ${dir} ] && [ ! -f ${`${dir}/${SITE_MARKER_FILE}`} ]; then
${removeServicesCommand([site.service], 30)} >/dev/null
fi`;
}

/** Request the site through nginx on the node, with the canonical domain as Host header. */
export function healthCheckCommand(site: Site, options: { https?: boolean } = {}): Script {
  const hc = site.config.healthcheck;
  if (hc === false) return raw('true');
  const statuses = hc.status === undefined ? ['2??', '3??'] : [hc.status].flat().map(String);
  // With a certificate, plain HTTP only redirects: ask over HTTPS, on this node, for the real answer.
  // -k: this checks the site, not the certificate (a self-signed or private CA one is fine here).
  const request = options.https
    ? sh`--resolve ${`${site.canonicalDomain}:443:127.0.0.1`} -k ${`https://${site.canonicalDomain}${hc.path}`}`
    : sh`-H ${`Host: ${site.canonicalDomain}`} ${`http://127.0.0.1${hc.path}`}`;
  return sh`i=0
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time ${hc.timeout} ${request})
  case "$code" in ${raw(statuses.join('|'))}) echo "$code"; exit 0;; esac
  i=$((i+1)); if [ "$i" -gt ${hc.retries} ]; then echo "$code"; exit 1; fi
  sleep 1
done`;
}

/** Sortable, readable release id: UTC time to the second. */
export function newReleaseId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** The id one second after `id` (or now, if that is later). */
export function nextReleaseId(id: string): string {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(id);
  const after = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) + 1000 : 0;
  return newReleaseId(new Date(Math.max(after, Date.now())));
}

/** Where core keeps a release's record and the configuration files it went live with. */
export function releaseRecordPath(site: Site, id: string): string {
  return `${site.paths.state}/releases/${id}.json`;
}
export function releaseFilesPath(site: Site, id: string): string {
  return `${site.paths.state}/releases/${id}.files.json`;
}

/** Exit codes of finishReleaseCommand: the record could not be written; an old release could not be removed. */
export const RECORD_FAILED_EXIT = 10;
export const PRUNE_FAILED_EXIT = 11;

/**
 * Write the release record, then prune: release folders without a good record
 * (failed or interrupted deploys) go, and of the good ones keep_releases stay.
 * The live release and the previous one are never removed. The record is
 * written beside its place, read back and renamed into it, so a full disk
 * leaves the old record or none, never half of one; a failure of either part
 * exits RECORD_FAILED_EXIT or PRUNE_FAILED_EXIT with the reason on stderr.
 */
export function finishReleaseCommand(site: Site, record: Record<string, unknown>, previous: string | undefined): Script {
  const p = site.paths;
  const id = String(record.id);
  const prev = previous ?? id;
  const others = Math.max(site.config.keep_releases - 1 - (previous ? 1 : 0), 0);
  const state = `${p.state}/releases`;
  const file = releaseRecordPath(site, id);
  const json = JSON.stringify(record);
  return sh`if ! { install -d -m 0700 ${state} && printf '%s\n' ${json} > ${`${file}.tmp`} && printf '%s\n' ${json} | cmp -s - ${`${file}.tmp`} && mv -f ${`${file}.tmp`} ${file}; }; then
  rm -f ${`${file}.tmp`}; echo ${`kraftwerk: could not write the release record ${file}`} >&2; exit ${RECORD_FAILED_EXIT}
fi
cd ${p.releases} || exit 0
kw_failed=
for d in */; do old=\${d%/}; [ "$old" = ${id} ] || [ "$old" = ${prev} ] || grep -q '"status":"live"' ${state}/"$old.json" 2>/dev/null || rm -rf -- "$old" ${state}/"$old.json" ${state}/"$old.files.json" || kw_failed="$kw_failed $old"; done
for old in $(ls -1 | sort -r | grep -vx -e ${id} -e ${prev} | tail -n +${others + 1}); do rm -rf -- "$old" ${state}/"$old.json" ${state}/"$old.files.json" || kw_failed="$kw_failed $old"; done
if [ -n "$kw_failed" ]; then printf 'kraftwerk: could not remove the old release(s)%s from %s\\n' "$kw_failed" ${p.releases} >&2; exit ${PRUNE_FAILED_EXIT}; fi`;
}

/**
 * What a failed finishReleaseCommand means for the user. The release is live
 * and passed its health check when this runs, so neither failure fails the
 * deploy: a failed deploy would roll back (or make CI deploy again) a release
 * that works. Each is a loud warning saying what is wrong and what to do.
 */
function reportFinish(ctx: DeployContext, code: number | null, stderr: string): void {
  if (code === 0) return;
  const why = lastLines(stderr.trim(), 4);
  const id = ctx.release.id;
  if (code === PRUNE_FAILED_EXIT) {
    ctx.log.warn(`${ctx.node}: release ${id} is live, but old releases could not be removed: ${why}\n  Check the free space and the folder ${ctx.site.paths.releases}; the next deploy tries again.`);
    return;
  }
  ctx.log.warn(
    `${ctx.node}: release ${id} is live and healthy, but its record could not be written (exit ${code}): ${why}\n` +
      `  Until it is, \`kraftwerk releases\` does not show it as live and a later rollback does not come back to it.\n` +
      `  Free space on ${ctx.node} (df -h ${ctx.site.paths.root}), then deploy again.`,
  );
}

/** The configuration files a release went live with (written beside its record). */
export function readReleaseFilesCommand(site: Site, id: string): Script {
  return sh`cat ${releaseFilesPath(site, id)}`;
}

function wsgiModuleFile(site: Site): string | undefined {
  const rel = site.wsgi.module.replace(/\./g, '/');
  for (const candidate of [`${rel}.py`, `${rel}/__init__.py`]) {
    if (existsSync(path.join(site.sourceDir, candidate))) return candidate;
  }
  return undefined;
}

/**
 * Probe the node (one command), check it can take the site, and take the
 * deploy lock. Shared by deploy and rollback.
 */
export async function inspectNode(ctx: DeployContext, task: TaskHandle, command: string): Promise<void> {
  const { site } = ctx;
  // One round trip: the lock first, then the probe with every plugin's questions.
  // Checks that fail below leave the lock to core's finally, which releases it.
  const interrupt = interruptOf(ctx);
  const { lock, tookOverFrom, output } = await DeployLock.acquire(ctx.remote, site.name, {
    command,
    waitMs: ctx.deploy.lockWaitMs,
    node: ctx.node,
    onWait: (holder) => task.output(`waiting for the deploy lock held by ${holder}`),
    andThen: probeCommand(site, ctx.probe),
    signal: interrupt?.signal,
  });
  ctx.state.set(LOCK_STATE, lock);
  // A lost lock stops the deploy before its switch; what runs on the node while the lock is held stops
  // when it is no longer ours and fresh there (the deploy's connection died without a word).
  if (interrupt) lock.onLost = (error) => interrupt.abort(error);
  if (ctx.remote instanceof GuardedRemote) ctx.remote.defaults.whileTrue = lock.heldCommand();
  if (tookOverFrom) ctx.log.warn(`${ctx.node}: took over a stale deploy lock of ${tookOverFrom}`);
  ctx.facts = parseProbe(output, site, ctx.probe);
  if (!ctx.remote.dryRun) {
    if (!ctx.facts.setUp) {
      throw new KraftwerkError(`node ${ctx.node} was not set up for Kraftwerk`, { hint: `Run: kraftwerk setup-node ${ctx.node}` });
    }
    for (const [other, domains] of Object.entries(ctx.facts.otherSites)) {
      const clash = site.domains.concat(site.aliases).filter((d) => domains.includes(d));
      if (clash.length) {
        throw new KraftwerkError(`domain ${clash.join(', ')} is already used by site ${other} on ${ctx.node}`, {
          hint: `Change domain/aliases in ${path.basename(site.configFile)}, or remove the other site with kraftwerk destroy.`,
        });
      }
    }
  }
  ctx.release.previous = ctx.facts.currentRelease;
  // Ids are times to the second: a deploy that started in the same second as the
  // live release (it waited for the lock) takes the next free second, never the live folder.
  if (command === 'deploy' && ctx.facts.currentRelease && ctx.facts.currentRelease >= ctx.release.id) {
    ctx.release.id = nextReleaseId(ctx.facts.currentRelease);
    ctx.release.path = `${site.paths.releases}/${ctx.release.id}`;
  }
  task.title(
    ctx.remote.dryRun
      ? 'inspect node (dry run: not checked)'
      : `inspect node (Python ${ctx.facts.pythonVersion ?? '?'}, live release ${ctx.facts.currentRelease ?? 'none'})`,
  );
}

/**
 * The command that releases this node's deploy lock, when no task after the
 * current one (at `stage`) will run: the caller appends it to its own command
 * and saves a round trip. Undefined otherwise (core's finally releases it).
 */
async function lockReleaseWithLastCommand(ctx: DeployContext, stage: number): Promise<Script | undefined> {
  const lock = ctx.state.get(LOCK_STATE) as DeployLock | undefined;
  const tasks = ctx.state.get(RESTART_TASKS_STATE) as TaskSpec<DeployContext>[] | undefined;
  if (!lock || !tasks) return undefined;
  for (const t of tasks) {
    if ((t.stage ?? Stage.DEFAULT) <= stage) continue;
    if (!t.skip || !(await t.skip(ctx))) return undefined;
  }
  return lock.releaseCommand();
}

/**
 * Write ctx.files (one round trip), together with a copy of the set kept beside the release record for rollback.
 * Files marked `atSwitch` are only recorded here: the switch writes them (see `execSwitch`).
 */
export async function writeFiles(ctx: DeployContext): Promise<string[]> {
  const files = ctx.files.all;
  const snapshot = { path: releaseFilesPath(ctx.site, ctx.release.id), content: `${JSON.stringify(files)}\n`, mode: 0o600 };
  const changed = (await ctx.remote.syncFiles([...files.filter((f) => !f.atSwitch), snapshot])).filter((p) => p !== snapshot.path);
  for (const p of changed) ctx.files.changed.add(p);
  return changed;
}

/** The saved file set; a damaged one is an error that does not quote it (it holds the env's values). */
function parseSavedFiles(text: string): RemoteFile[] {
  try {
    return JSON.parse(text) as RemoteFile[];
  } catch {
    throw new KraftwerkError('the saved configuration of the release cannot be read (not JSON)', {
      hint: 'Deploy again: a deploy writes the whole configuration.',
    });
  }
}

/**
 * Put back the configuration files a release went live with (rollback, or
 * undoing a failed deploy), its environment re-merged with the site variables
 * of now. Returns the paths that changed and how the environment was made.
 */
export async function restoreFiles(ctx: DeployContext, releaseId: string): Promise<{ changed: string[]; environment?: { generated: number; site: number } }> {
  const res = await ctx.remote.exec(readReleaseFilesCommand(ctx.site, releaseId), { check: false, readOnly: true, secretOutput: true });
  if (res.code !== 0) return { changed: [] };
  // env set since the release was deployed must not be undone: see withCurrentSiteVariables.
  const { files, environment, envdir } = withCurrentSiteVariables(parseSavedFiles(res.stdout), `${ctx.site.paths.releases}/${releaseId}`, ctx.facts.envLocal);
  for (const f of files) ctx.files.add(f);
  const changed = await ctx.remote.syncFiles(files.filter((f) => !f.atSwitch));
  if (envdir) await ctx.remote.exec(pruneEnvdirCommand(envdir.dir, envdir.names));
  for (const p of changed) ctx.files.changed.add(p);
  return { changed, environment };
}

/**
 * Run the switch `command`, then write ctx's `atSwitch` files (cron lines, worker services: see
 * RemoteFile.atSwitch) in the same remote command: they change only once `current` has, and a
 * connection that drops then does not stop it half way (the switch ignores signals). The files
 * that changed go to ctx.files.changed, as with `writeFiles`.
 */
export async function execSwitch(ctx: DeployContext, command: Script): Promise<ExecResult> {
  const files = ctx.files.all.filter((f) => f.atSwitch);
  if (!files.length || ctx.remote.dryRun) {
    const res = await ctx.remote.exec(command, { check: false });
    // --dry-run shows them the way it shows every other file.
    if (files.length && res.code === 0) await ctx.remote.syncFiles(files);
    return res;
  }
  // The switch script exits before this part when it could not switch, so nothing is written then.
  const write = buildSyncFilesCommand(files);
  const res = await ctx.remote.exec(sh`${command}
(
${write.command}
)`, { stdin: write.stdin, check: false });
  const paths = new Set(files.map((f) => f.path));
  for (const line of res.stdout.split('\n')) if (paths.has(line)) ctx.files.changed.add(line);
  return res;
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
        run: (ctx, task) => inspectNode(ctx, task, 'deploy'),
      });
    });

    hooks.sync.tap('core', (ctx, tasks) => {
      const marker = preparedSiteMarker(site);
      ctx.probe.read(marker.path).exists(...siteFolders(site));
      tasks.add({
        title: 'prepare site user and folders',
        stage: Stage.PREPARE,
        skip: (c) =>
          isProvisioned(c.facts, marker) && siteFolders(site).every((f) => c.facts.exists.has(f)) ? 'site user and folders (unchanged)' : false,
        run: async (c) => {
          await c.remote.exec(prepareSiteCommand(site));
          c.files.add(marker);
        },
      });
      tasks.add({
        title: 'rsync project',
        run: async (ctx, task) => {
          const { buildRsyncArgs, findRsyncExcludeFile, runRsync } = await import('../remote/rsync.ts');
          const args = buildRsyncArgs({
            target: ctx.remote.target,
            source: site.sourceDir,
            dest: ctx.release.path,
            linkDest: ctx.release.previous ? `${site.paths.releases}/${ctx.release.previous}` : undefined,
            excludes: site.config.exclude,
            excludeFromFile: findRsyncExcludeFile(site.sourceDir),
            group: site.user,
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
          const { vars } = await computeSiteEnvironment(hooks, site, ctx.node, ctx.facts.env, ctx.facts.envLocal);
          ctx.env = vars;
          // The names from env.local are recorded in the file: a rollback to this release replaces them with the values of then (see withCurrentSiteVariables).
          const content = renderEnvFile(vars, Object.keys(ctx.facts.envLocal));
          ctx.files.add({ path: releaseConfig(ctx.release.path).env, content, mode: 0o640, owner: 'root', group: site.user });
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
          const changed = await writeFiles(ctx);
          task.title(`write configuration (${ctx.files.all.length} files, ${changed.length} changed)`);
        },
      });
      tasks.add({
        title: 'snapshot data before release commands',
        stage: Stage.AFTER_FILES + 40,
        skip: (ctx) =>
          !site.config.release.length
            ? true
            : !ctx.facts.currentRelease && !ctx.remote.dryRun
              ? 'first deploy: nothing to snapshot'
              : false,
        run: async (ctx, task) => {
          const { takeSnapshot } = await import('./snapshots.ts');
          const parts = await takeSnapshot(hooks, ctx, task);
          task.title(parts ? `snapshot data → backups/pre-${ctx.release.id}` : 'snapshot data (no plugin keeps data)');
        },
      });
      tasks.add({
        title: 'release commands',
        stage: Stage.AFTER_FILES + 50,
        run: async (ctx, task) => {
          if (!site.config.release.length) {
            // Nothing runs in the release before it goes live: the switch opens it, in its own command.
            ctx.state.set(LINK_AT_SWITCH_STATE, true);
            return task.title('release commands (none)');
          }
          await ctx.remote.exec(openReleaseCommand(site, ctx.release));
          // Interruptible: a Ctrl-C, a timeout or a lost connection stops the command on the node too.
          const timeoutMs = deployTimeouts(site.config).releaseCommandMs;
          for (const command of site.config.release) {
            task.output(`$ ${command}`);
            await ctx.remote
              .exec(inSiteEnv(site, { dir: ctx.release.path, venv: ctx.release.venv, command }), {
                onStdout: (c) => task.output(c),
                onStderr: (c) => task.output(c),
                interruptible: true,
                timeoutMs,
              })
              .catch((err: unknown) => {
                if (!(err instanceof CommandTimeoutError)) throw err;
                throw new KraftwerkError(`release command \`${command}\` on ${ctx.node} (configure) timed out: it ${CommandTimeoutError.what(err.kind, err.limitMs)}, and was stopped`, {
                  hint: `Nothing was switched. If it needs longer, raise timeouts.${err.kind === 'total' ? 'release_commands' : 'silence'} in ${path.basename(site.configFile)}.`,
                });
              });
          }
        },
      });
    });

    hooks.restart.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'switch current release',
        stage: Stage.SWITCH,
        run: async (ctx, task) => {
          const open = ctx.state.get(LINK_AT_SWITCH_STATE) ? openReleaseCommand(site, ctx.release) : undefined;
          const lock = ctx.state.get(LOCK_STATE) as DeployLock | undefined;
          const lost = lock?.lost;
          if (lost) throw lost;
          // From here on a Ctrl-C lets the deploy finish (health check, rollback); before, it stops it.
          interruptOf(ctx)?.beginSwitch();
          const switchIt = switchCommand(site, ctx.release.id, lock?.info.token);
          const res = await execSwitch(ctx, open ? sh`${open} && ${switchIt}` : switchIt);
          const switched = ctx.remote.dryRun || res.stdout.split('\n').includes(SWITCHED_MARKER);
          // Once `current` moved, the rollback logic owns this node, whatever failed after the rename.
          if (switched) ctx.state.set(SWITCHED_STATE, true);
          if (res.code !== 0) {
            const why = lastLines(res.stderr.trim() || res.stdout.trim(), 8);
            if (switched) {
              throw new KraftwerkError(`the switch on ${ctx.node} (restart) moved current to ${ctx.release.id}, then failed (exit ${res.code}):\n${why}`);
            }
            throw new KraftwerkError(
              res.code === LOCK_LOST_EXIT
                ? `the switch on ${ctx.node} (restart) was refused: the deploy lock is no longer this deploy's`
                : `the switch on ${ctx.node} (restart) failed (exit ${res.code}): ${why}`,
              {
                hint: `Nothing was switched: ${ctx.release.previous ? `release ${ctx.release.previous}` : "the site's live release"} keeps serving.`,
              },
            );
          }
          task.title(`switch current → ${ctx.release.id}`);
        },
      });
      tasks.add({
        title: 'health check',
        stage: Stage.VERIFY,
        skip: () => (site.config.healthcheck === false ? 'healthcheck: false' : false),
        run: async (ctx, task) => {
          const hc = site.config.healthcheck as Exclude<typeof site.config.healthcheck, false>;
          const limit = deployTimeouts(site.config).healthcheckMs;
          const res = await ctx.remote
            .exec(healthCheckCommand(site, { https: Boolean(getSiteTls(ctx)?.certificate) }), { check: false, interruptible: true, timeoutMs: limit })
            .catch((err: unknown) => {
              if (!(err instanceof CommandTimeoutError)) throw err;
              throw new KraftwerkError(`health check on ${ctx.node} (restart) timed out: GET ${hc.path} ${CommandTimeoutError.what(err.kind, err.limitMs)}`, {
                hint: `If the site needs longer to answer, raise timeouts.healthcheck in ${path.basename(site.configFile)}.`,
              });
            });
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
        stage: RECORD_STAGE,
        run: async (ctx) => {
          const r = ctx.release;
          // A rollback keeps the release's own record (when and by whom it was deployed).
          const base = (ctx.state.get(RECORD_STATE) as Record<string, unknown> | undefined) ?? {
            time: new Date().toISOString(),
            deployer: r.deployer,
            revision: r.revision,
            venv: r.venv,
          };
          const finish = finishReleaseCommand(site, { ...base, id: r.id, status: 'live' }, r.previous);
          // The deploy's last command also releases its lock (core's finally does when this is not reached).
          const unlock = await lockReleaseWithLastCommand(ctx, RECORD_STAGE);
          const res = await ctx.remote.exec(unlock ? sh`(${finish}); kw_rc=$?; ${unlock}; exit $kw_rc` : finish, { check: false });
          if (unlock) ctx.state.delete(LOCK_STATE);
          reportFinish(ctx, res.code, res.stderr);
        },
      });
    });
  },
});
