import type { DeployContext } from '../engine/context.ts';
import { RemoteFileSet } from '../engine/context.ts';
import { KraftwerkError } from '../errors.ts';
import { collectTasks, type Hooks } from '../engine/hooks.ts';
import { RECORD_STATE, releaseRecordPath } from './release-record.ts';
import { restoreFiles } from './release-files.ts';
import type { RunnableTask } from '../engine/runner.ts';
import { sh } from '../shell/sh.ts';
import { describeRestoredEnvironment } from './site-environment.ts';
import { Stage } from '../engine/tasks.ts';

/** A release record as core writes it beside each release. */
export interface StoredRelease {
  id: string;
  time?: string;
  deployer?: string;
  revision?: string;
  venv?: string;
  status?: string;
}

export async function readReleaseRecord(ctx: DeployContext, id: string): Promise<StoredRelease | undefined> {
  const res = await ctx.remote.exec(sh`cat ${releaseRecordPath(ctx.site, id)}`, { check: false });
  if (res.code !== 0) return undefined;
  try {
    return JSON.parse(res.stdout) as StoredRelease;
  } catch {
    return undefined;
  }
}

/**
 * A context for bringing `target` back: the same node, connection and lock,
 * the target's own venv, and a fresh file set (filled from the target's saved
 * configuration).
 */
export function rollbackContext(from: DeployContext, target: StoredRelease): DeployContext {
  const state = new Map(from.state);
  state.set(RECORD_STATE, { time: target.time, deployer: target.deployer, revision: target.revision, venv: target.venv });
  for (const key of [...state.keys()]) if (key !== RECORD_STATE && key !== 'core.lock') state.delete(key);
  return {
    ...from,
    state,
    release: {
      id: target.id,
      path: `${from.site.paths.releases}/${target.id}`,
      venv: target.venv ?? '',
      revision: target.revision,
      deployer: target.deployer ?? '',
      previous: from.facts.currentRelease,
    },
    files: new RemoteFileSet(),
  };
}

/** Restore the target's configuration, then run the restart phase (switch, reloads, health check) for it. */
export async function rollbackTasks(hooks: Hooks, ctx: DeployContext): Promise<RunnableTask<DeployContext>[]> {
  const restart = await collectTasks(hooks.restart, 'restart', ctx);
  return [
    {
      title: `restore configuration of ${ctx.release.id}`,
      stage: Stage.SWITCH - 100,
      run: async (c, task) => {
        const { changed, environment } = await restoreFiles(c, c.release.id);
        const env = environment ? describeRestoredEnvironment(c.release.id, environment) : undefined;
        task.title(`restore configuration of ${c.release.id} (${changed.length} files changed${env ? `; ${env}` : ''})`);
        // Said outside the task list too: which secrets the site runs with after a rollback must not hide in a progress line.
        if (env) c.log.info(`${c.node}: ${env}`);
      },
    },
    ...(restart.sorted() as RunnableTask<DeployContext>[]),
  ];
}

export function noPreviousRelease(node: string): KraftwerkError {
  return new KraftwerkError(`there is no earlier good release on ${node} to roll back to`, {
    hint: `See the releases with: kraftwerk releases ${node}`,
  });
}
