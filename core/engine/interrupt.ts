import type { NodeContext } from './context.ts';
import { KraftwerkError } from '../errors.ts';

/** A deploy stopped by SIGINT or SIGTERM before its switch (exit 130, as shells report a SIGINT). */
export class InterruptedError extends KraftwerkError {
  override exitCode = 130;
}

const INTERRUPT_STATE = 'core.interrupt';

/**
 * How a deploy stops when asked to. The first SIGINT or SIGTERM before the
 * switch aborts `signal`: no new task starts, the interruptible commands
 * running on the nodes (pip, release commands, the health check) are killed
 * there, and the deploy undoes its unswitched release and releases its lock.
 * Once a switch has begun, a signal only says so: the deploy finishes its
 * health check and, when that fails, its rollback (stopping half-way would
 * leave a node on a release nobody checked). A second signal exits at once.
 * A lost deploy lock aborts the same way (with its own error).
 */
export class DeployInterrupt {
  private readonly controller = new AbortController();
  private switching = false;
  private count = 0;
  /** The signal that stopped the deploy, if one did. */
  received?: NodeJS.Signals;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Stop the deploy (a lost lock, or a signal before the switch); the first reason wins. */
  abort(reason: Error): void {
    if (!this.switching && !this.signal.aborted) this.controller.abort(reason);
  }

  /** Throws the reason the deploy was stopped for, if it was. */
  throwIfAborted(): void {
    this.signal.throwIfAborted();
  }

  /** Called when a node's switch starts: from now on a signal lets the deploy finish. Throws if it was stopped before. */
  beginSwitch(): void {
    this.throwIfAborted();
    this.switching = true;
  }

  /** Listen for SIGINT and SIGTERM until the returned function is called. */
  listen(warn: (message: string) => void, onExit: () => void = () => process.exit(130)): () => void {
    const handler = (sig: NodeJS.Signals) => {
      this.count++;
      if (this.count > 1) {
        process.stderr.write(`${sig} again: exiting at once; what was still running on the node is killed as the connection closes, and the lock goes stale.\n`);
        onExit();
        return;
      }
      this.received = sig;
      if (this.switching || this.signal.aborted) {
        warn(`${sig}: the switch has begun, so the deploy finishes its health check (and rolls back if that fails). ${sig} again exits at once.`);
        return;
      }
      warn(`${sig}: stopping the deploy: what runs on the node is stopped, the new release undone, the lock released. ${sig} again exits at once.`);
      this.controller.abort(new InterruptedError(`interrupted by ${sig}`));
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  }

  /** The deploy was stopped by a signal (not by a lost lock or a failure). */
  get interrupted(): boolean {
    return this.signal.aborted && this.signal.reason instanceof InterruptedError;
  }

  attach(ctx: NodeContext): void {
    ctx.state.set(INTERRUPT_STATE, this);
  }
}

/** The interrupt of the deploy this node context belongs to (undefined for other commands, e.g. rollback). */
export function interruptOf(ctx: NodeContext): DeployInterrupt | undefined {
  return ctx.state.get(INTERRUPT_STATE) as DeployInterrupt | undefined;
}
