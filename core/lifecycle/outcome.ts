import type { OutcomeContext } from '../engine/context.ts';
import type { Hooks } from '../engine/hooks.ts';

/**
 * Tell the plugins how a deploy or a rollback ended (the `outcome` hook), once, after its last
 * line of progress. Whatever goes wrong there is a warning: the command's own result, its error
 * and its exit code stay what they are (the interceptor already turns each tap's failure into a
 * warning; this catches hooks that were made without it).
 */
export async function reportOutcome(hooks: Hooks, outcome: OutcomeContext): Promise<void> {
  try {
    await hooks.outcome.promise(outcome);
  } catch (err) {
    outcome.log.warn(err instanceof Error ? err.message : String(err));
  }
}

/** The message a failed command ends with, as the outcome's `error`. */
export function outcomeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
