/**
 * Task descriptions that plugins contribute. Plugins never import listr2: they
 * add plain TaskSpecs to a TaskList, and core turns them into listr2 tasks
 * (see runner.ts), so every plugin's work is its own line of progress.
 */

/**
 * Named stages order tasks of different plugins within one hook. Lower runs
 * first; tasks of equal stage keep the order in which plugins were applied.
 * Use these constants (or offsets from them), never plugin names.
 */
export const Stage = {
  /** Checks and preparation that later tasks rely on (users, folders, databases). */
  PREPARE: -200,
  EARLY: -100,
  DEFAULT: 0,
  LATE: 100,
  /** configure: core writes every collected file here in one round trip. */
  WRITE_FILES: 200,
  /** configure: tasks that react to written files (e.g. `nginx -t`), release commands. */
  AFTER_FILES: 300,
  /** restart: core switches `current` here. */
  SWITCH: 400,
  /** restart: reload services after the switch. */
  RELOAD: 500,
  /** restart: health checks and reports. */
  VERIFY: 600,
} as const;

/** What a running task can do besides its work. */
export interface TaskHandle {
  /** Show a line of output under the task (the last lines stay visible). */
  output(line: string): void;
  /** Change the task's title (e.g. to add a result: "venv (reused)"). */
  title(title: string): void;
  /** Mark the task skipped with a reason, after it started. */
  skip(reason: string): void;
}

export interface TaskSpec<C> {
  title: string;
  /** Ordering between plugins; default Stage.DEFAULT. */
  stage?: number;
  /** Return a string to skip the task with that reason, or true to skip silently. */
  skip?: (ctx: C) => boolean | string | Promise<boolean | string>;
  run(ctx: C, task: TaskHandle): Promise<void> | void;
}

/** A TaskSpec as collected: with the plugin that added it. */
export interface CollectedTask<C> extends TaskSpec<C> {
  plugin: string;
  hook: string;
  order: number;
}

/** The collector handed to every tap: plugins call `add()` on it. */
export class TaskList<C> {
  constructor(
    readonly hook: string,
    private readonly plugin = 'core',
    private readonly items: CollectedTask<C>[] = [],
  ) {}

  add(task: TaskSpec<C>): this {
    this.items.push({ ...task, plugin: this.plugin, hook: this.hook, order: this.items.length });
    return this;
  }

  /** The same list, recording tasks as added by `plugin` (core does this for each tap). */
  forPlugin(plugin: string): TaskList<C> {
    return new TaskList<C>(this.hook, plugin, this.items);
  }

  /** Tasks sorted by stage, then by the order they were added. */
  sorted(): CollectedTask<C>[] {
    return [...this.items].sort((a, b) => (a.stage ?? Stage.DEFAULT) - (b.stage ?? Stage.DEFAULT) || a.order - b.order);
  }

  get length(): number {
    return this.items.length;
  }
}
