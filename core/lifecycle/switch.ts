import { type Script, sh } from '../shell/sh.ts';
import type { Site } from '../config/site.ts';
import { type ContributedScript, type DeployContext, SwitchSteps } from '../engine/context.ts';
import { type Hooks, lifecycleHooks } from '../engine/hooks.ts';
import type { ExecResult } from '../remote/remote.ts';
import { buildSyncFilesCommand } from '../remote/syncfiles.ts';
import { lockPath } from './lock.ts';
import { releaseFilesPath } from './release-record.ts';

/** Set once `current` points at the new release on a node. */
export const SWITCHED_STATE = 'core.switched';

/** The line the switch prints once `current` points at the new release (what fails after it does not undo that). */
export const SWITCHED_MARKER = 'kraftwerk: switched';
/** Exit code of a switch that found the deploy lock no longer its own. */
export const LOCK_LOST_EXIT = 75;

/**
 * Atomically point `current` at a release: a new symlink renamed over the old
 * one. That one rename moves code, configuration and traffic (see
 * `releaseConfig`); then the plugins' `afterSwitch` steps run (e.g. the old
 * instance of the site stops). Signals are ignored from the first line on, so
 * a connection that drops now does not leave this half done.
 *
 * Nothing happens unless the deploy lock still holds `lockToken` (a deploy
 * that lost its lock must not switch beside the one that took it over); and
 * when the rename fails, the script stops there with an error: the live slot
 * keeps running and `current` is as it was.
 */
export function switchCommand(site: Site, releaseId: string, lockToken?: string, steps = new SwitchSteps()): Script {
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
  echo ${`kraftwerk: could not point ${current} at ${target} (see above); current and what serves the site were left as they were`} >&2
  exit 1
fi
echo ${SWITCHED_MARKER}${eachOnItsLine(steps.afterSwitchScripts)}`;
}

/**
 * Undo a release that did not go live (a failed or interrupted deploy): the
 * plugins' `onUndo` steps run (e.g. what was started for it stops) and, with
 * `remove`, its folder and saved configuration go (a failed release stays
 * until the next deploy, listed as failed, to be looked at). Only while the deploy lock holds `lockToken` (a deploy that lost its
 * lock may not touch what the one that took it over does) and never the
 * release `current` points at. Prints `removed` when the folder went.
 */
export function undoReleaseCommand(site: Site, releaseId: string, lockToken: string, options: { remove: boolean }, steps = new SwitchSteps()): Script {
  const rel = `${site.paths.releases}/${releaseId}`;
  const remove = options.remove
    ? sh`
if [ -e ${rel} ] && [ "$(readlink -f ${site.paths.current} 2>/dev/null)" != "$(readlink -f ${rel})" ]; then
  rm -rf -- ${rel} ${releaseFilesPath(site, releaseId)} && echo removed
fi`
    : sh``;
  return sh`grep -q ${lockToken} ${`${lockPath(site.name)}/info`} 2>/dev/null || { echo 'kraftwerk: the deploy lock is not ours: nothing undone' >&2; exit 1; }${eachOnItsLine(steps.undoScripts)}${remove}`;
}

/** The plugins' steps for this node's switch and undo (the `switch` extension point). */
export async function collectSwitchSteps(hooks: Hooks, ctx: DeployContext): Promise<SwitchSteps> {
  const steps = new SwitchSteps();
  await lifecycleHooks(hooks).switch.promise(ctx, steps);
  return steps;
}

/** The scripts, each on a line of its own after the line before. */
function eachOnItsLine(scripts: readonly ContributedScript[]): Script {
  return scripts.reduce((all, c) => sh`${all}
${c.script}`, sh``);
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
