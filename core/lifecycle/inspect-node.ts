import path from 'node:path';
import { KraftwerkError } from '../errors.ts';
import type { DeployContext } from '../engine/context.ts';
import type { TaskHandle } from '../engine/tasks.ts';
import { interruptOf } from '../engine/interrupt.ts';
import { GuardedRemote } from '../remote/remote.ts';
import { DeployLock } from './lock.ts';
import { keepLock } from './held-lock.ts';
import { parseProbe, probeCommand } from './probe.ts';
import { nextReleaseId } from './release-record.ts';
import { hasSecrets, resolveSecrets } from './site-secrets.ts';

/**
 * Probe the node (one command), check it can take the site, and take the
 * deploy lock. Shared by deploy and rollback.
 */
export async function inspectNode(ctx: DeployContext, task: TaskHandle, command: string): Promise<void> {
  const { site } = ctx;
  // The `secrets:` commands run here, before the lock: one that fails stops the command before anything on the node changed.
  if (hasSecrets(site)) {
    task.output(`running the secrets: commands here (${Object.keys(site.config.secrets).join(', ')})`);
    await resolveSecrets(site);
  }
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
  keepLock(ctx, lock);
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
