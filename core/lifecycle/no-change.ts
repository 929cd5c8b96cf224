import type { DeployContext } from '../engine/context.ts';
import type { Hooks } from '../engine/hooks.ts';
import { Stage, type TaskHandle, type TaskSpec } from '../engine/tasks.ts';
import { deployTimeouts } from '../config/durations.ts';
import { sh } from '../shell/sh.ts';
import { releaseFingerprint } from './fingerprint.ts';
import { healthCheckCommand, healthCheckRequest } from './healthcheck.ts';
import { forgetLock, heldLock } from './held-lock.ts';
import { releaseLockCommand } from './lock.ts';

/** The digest of what this deploy would put live (releaseFingerprint); the release record keeps it. */
export const FINGERPRINT_STATE = 'core.fingerprint';
/** Set on a node whose live release is what this deploy would put live: its id. */
const UNCHANGED_STATE = 'core.unchanged';

/**
 * preSync, right after the probe: compare what this deploy would put live with the live
 * release's fingerprint (its record, which the probe read). Equal, and not --force: the node
 * is unchanged, and the deploy (when every node is) only checks the live site.
 */
export function compareWithLiveTask(hooks: Hooks): TaskSpec<DeployContext> {
  return {
    title: 'compare with the live release',
    stage: Stage.PREPARE + 10,
    // Under --dry-run the probe does not run: nothing to compare with, every step is shown.
    skip: (ctx) => (ctx.remote.dryRun ? 'dry run: nothing to compare with' : false),
    run: async (ctx, task) => {
      const digest = (await releaseFingerprint(hooks, ctx)).digest;
      ctx.state.set(FINGERPRINT_STATE, digest);
      const live = ctx.facts.currentRelease;
      const record = ctx.facts.liveRecord;
      if (!live) return task.title('compare with the live release (none is live)');
      if (record?.status !== 'live' || record.fingerprint !== digest) return task.title(`changed since the live release ${live}`);
      if (ctx.deploy.force || ctx.deploy.upgradePackages) {
        return task.title(`no change since the live release ${live}: deploying anyway (${ctx.deploy.force ? '--force' : '--upgrade-packages'})`);
      }
      ctx.state.set(UNCHANGED_STATE, live);
      task.title(`no change since the live release ${live}`);
    },
  };
}

/** The live release of a node this deploy would not change (compareWithLiveTask), else undefined. */
export function unchangedRelease(ctx: DeployContext): string | undefined {
  return ctx.state.get(UNCHANGED_STATE) as string | undefined;
}

/**
 * The no-change deploy's one step on a node: the health check of the live release, and, when it
 * passes, the release of the deploy lock in the same command. Nothing else is written: the lock
 * (a folder under /run, taken with the probe so that no other deploy changes the node between
 * the comparison and this answer) is all that came and went. False when the site did not
 * answer as it should: the lock is still held, and the caller deploys after all. `unlock`:
 * release the lock with the check (else the caller's finally does).
 */
export async function confirmLive(hooks: Hooks, ctx: DeployContext, task: TaskHandle, options: { unlock: boolean }): Promise<boolean> {
  const { site } = ctx;
  const id = unchangedRelease(ctx)!;
  const lock = options.unlock ? heldLock(ctx) : undefined;
  const check = healthCheckCommand(site, await healthCheckRequest(hooks, ctx));
  // The heartbeat goes on until the answer is known: a failed check keeps the lock for the deploy that follows.
  const unlock = lock ? sh`; kw_rc=$?; if [ "$kw_rc" = 0 ]; then ${releaseLockCommand(site.name, lock.info.token)}; fi; exit "$kw_rc"` : sh``;
  const res = await ctx.remote
    .exec(sh`${check}${unlock}`, { check: false, interruptible: true, timeoutMs: deployTimeouts(site.config).healthcheckMs })
    .catch(() => undefined);
  if (!res || res.code !== 0) {
    const answer = res?.stdout.trim() || 'no answer';
    ctx.log.warn(`${ctx.node}: the live release ${id} did not pass its health check (${answer}): deploying it again`);
    return false;
  }
  if (lock) {
    // Released by that command: stop the heartbeat (releaseCommand does) and forget it.
    lock.releaseCommand();
    forgetLock(ctx);
  }
  const hc = site.config.healthcheck;
  task.title(hc === false ? `live release ${id} (healthcheck: false)` : `health check of live release ${id}: GET ${hc.path} → ${res.stdout.trim()}`);
  return true;
}
