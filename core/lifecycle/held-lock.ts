import type { DeployContext, NodeContext } from '../engine/context.ts';
import { Stage, type TaskSpec } from '../engine/tasks.ts';
import type { Script } from '../shell/sh.ts';
import type { DeployLock } from './lock.ts';

// The deploy lock a command holds on a node, kept in the node context's state from the
// moment inspectNode takes it until it is released (by the deploy's last command or core's finally).
const LOCK_STATE = 'core.lock';
/** The restart tasks of this node (set by deploy): the record task releases the lock when none after it will run. */
export const RESTART_TASKS_STATE = 'core.restartTasks';

/** Note the deploy lock this node context now holds. */
export function keepLock(ctx: NodeContext, lock: DeployLock): void {
  ctx.state.set(LOCK_STATE, lock);
}

/** Forget the held lock (its release went with a command of the caller's). */
export function forgetLock(ctx: NodeContext): void {
  ctx.state.delete(LOCK_STATE);
}

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
 * The command that releases this node's deploy lock, when no task after the
 * current one (at `stage`) will run: the caller appends it to its own command
 * and saves a round trip. Undefined otherwise (core's finally releases it).
 */
export async function lockReleaseWithLastCommand(ctx: DeployContext, stage: number): Promise<Script | undefined> {
  const lock = ctx.state.get(LOCK_STATE) as DeployLock | undefined;
  const tasks = ctx.state.get(RESTART_TASKS_STATE) as TaskSpec<DeployContext>[] | undefined;
  if (!lock || !tasks) return undefined;
  for (const t of tasks) {
    if ((t.stage ?? Stage.DEFAULT) <= stage) continue;
    if (!t.skip || !(await t.skip(ctx))) return undefined;
  }
  return lock.releaseCommand();
}
