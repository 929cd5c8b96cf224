import type { OutcomeContext, OutcomeStatus } from '../engine/context.ts';
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

/** What every outcome of one command shares: all of the context but how it ended. */
export type OutcomeOrigin = Omit<OutcomeContext, 'status' | 'release' | 'durationMs' | 'error'> & {
  /** When the command started (Date.now()). */
  readonly startedAt: number;
};

/**
 * The one call a deploy or a rollback makes when it has ended: `status`, the release it put
 * live (or tried to), and on a failure what it failed with (its message becomes `error`).
 */
export function outcomeReporter(hooks: Hooks, { startedAt, ...origin }: OutcomeOrigin) {
  return (status: OutcomeStatus, release: OutcomeContext['release'], failure?: unknown): Promise<void> =>
    reportOutcome(hooks, {
      ...origin,
      status,
      ...(release ? { release } : {}),
      durationMs: Date.now() - startedAt,
      ...(failure === undefined ? {} : { error: failure instanceof Error ? failure.message : String(failure) }),
    });
}
