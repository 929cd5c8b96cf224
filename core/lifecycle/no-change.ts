import type { DeployContext } from '../engine/context.ts';
import type { Hooks } from '../engine/hooks.ts';
import { Stage, type TaskHandle, type TaskSpec } from '../engine/tasks.ts';
import { deployTimeouts } from '../config/durations.ts';
import { releaseFingerprint } from './fingerprint.ts';
import { healthCheckCommand, healthCheckRequest } from './healthcheck.ts';

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
 * The no-change deploy's one step on a node: the health check of the live release. Nothing is
 * written: the lock (a folder under /run, taken with the probe so that no other deploy changes
 * the node between the comparison and this answer) is all that came and went, and core's
 * finally releases it. It is not released inside this command: the command is watched (killed
 * once the lock is no longer ours), so a release there raced the watcher and the CLI's
 * heartbeat, and left locks behind under 20 concurrent deploys. False when the site did not
 * answer as it should: the lock is still held, and the caller deploys after all.
 */
export async function confirmLive(hooks: Hooks, ctx: DeployContext, task: TaskHandle): Promise<boolean> {
  const { site } = ctx;
  const id = unchangedRelease(ctx)!;
  const check = healthCheckCommand(site, await healthCheckRequest(hooks, ctx));
  const res = await ctx.remote
    .exec(check, { check: false, interruptible: true, timeoutMs: deployTimeouts(site.config).healthcheckMs })
    .catch(() => undefined);
  if (!res || res.code !== 0) {
    const answer = res?.stdout.trim() || 'no answer';
    ctx.log.warn(`${ctx.node}: the live release ${id} did not pass its health check (${answer}): deploying it again`);
    return false;
  }
  const hc = site.config.healthcheck;
  task.title(hc === false ? `live release ${id} (healthcheck: false)` : `health check of live release ${id}: GET ${hc.path} → ${res.stdout.trim()}`);
  return true;
}
