import type { ListrTask, ListrTaskWrapper } from 'listr2';
import type { RunOptions } from './context.ts';
import { KraftwerkError, PluginError } from '../errors.ts';
import type { TaskHandle, TaskSpec } from './tasks.ts';
import { maskSecrets } from '../shell/sh.ts';

/**
 * The only module that imports listr2 (when it first runs tasks). Plugins hand over TaskSpecs; this turns
 * them into listr2 tasks: a live tree on a terminal, plain lines in CI logs.
 */

export type RunnableTask<C> = TaskSpec<C> & { plugin?: string; hook?: string };

/** A group of tasks shown under one title (a phase, or a node). */
export interface TaskGroup<C> {
  title: string;
  tasks: RunnableTask<C>[] | TaskGroup<C>[];
  /** Run the children concurrently (e.g. one group per node). */
  concurrent?: boolean;
  /** Node name, used in error messages. */
  node?: string;
  ctx?: C;
  /** Keep running the other children when one fails (default: stop at the first failure). */
  keepGoing?: boolean;
}

function isGroup<C>(t: RunnableTask<C> | TaskGroup<C>): t is TaskGroup<C> {
  return 'tasks' in t && Array.isArray((t as TaskGroup<C>).tasks);
}

type Wrapper = ListrTaskWrapper<unknown, never, never>;

function handleOf(task: Wrapper): TaskHandle {
  return {
    output(line: string) {
      // listr2 shows the last line(s) of output under a running task.
      // Remote output may echo a secret (a release command printing the environment).
      task.output = maskSecrets(line.replace(/\s+$/, ''));
    },
    title(title: string) {
      task.title = maskSecrets(title);
    },
    skip(reason: string) {
      task.skip(reason);
    },
  };
}

function titleOf(t: RunnableTask<unknown>): string {
  return t.plugin && t.plugin !== 'core' ? `${t.plugin}: ${t.title}` : t.title;
}

function toListr<C>(item: RunnableTask<C> | TaskGroup<C>, ctx: C, node: string | undefined): ListrTask<unknown, never, never> {
  if (isGroup(item)) {
    const groupCtx = (item.ctx ?? ctx) as C;
    const groupNode = item.node ?? node;
    return {
      title: item.title,
      task: (_c, task) =>
        task.newListr(
          (item.tasks as (RunnableTask<C> | TaskGroup<C>)[]).map((child) => toListr(child, groupCtx, groupNode)),
          { concurrent: item.concurrent ?? false, exitOnError: !item.keepGoing },
        ),
    };
  }
  const spec = item;
  return {
    title: titleOf(spec as RunnableTask<unknown>),
    skip: spec.skip ? () => spec.skip!(ctx) : undefined,
    task: async (_c, task) => {
      try {
        await spec.run(ctx, handleOf(task as Wrapper));
      } catch (err) {
        // listr2 prints a failed task's message itself: no secret value in it (reportError masks it again).
        if (err instanceof Error) err.message = maskSecrets(err.message);
        throw taskFailure(spec, node, err);
      }
    },
  };
}

/** A failed task's error: a plugin's names the plugin, hook and node; core's own is kept as it is. */
export function taskFailure<C>(task: RunnableTask<C>, node: string | undefined, err: unknown): unknown {
  return task.plugin && task.plugin !== 'core' ? PluginError.of(task.plugin, task.hook ?? 'task', node, err) : err;
}

function rendererFor(options: RunOptions) {
  if (options.quiet) return { renderer: 'silent' as const };
  // NO_COLOR and non-TTY output are detected by listr2 itself (falls back to `simple`).
  return {
    renderer: (options.verbose ? 'verbose' : 'default') as 'default',
    fallbackRenderer: 'simple' as const,
    rendererOptions: { collapseSubtasks: false, showErrorMessage: false, timer: undefined },
    fallbackRendererOptions: { timestamp: undefined },
  };
}

/** Run tasks and groups with progress; the first failure stops the run and is thrown. */
export async function runTasks<C>(
  items: (RunnableTask<C> | TaskGroup<C>)[],
  ctx: C,
  options: RunOptions,
  listOptions?: { concurrent?: boolean; node?: string; keepGoing?: boolean },
): Promise<void> {
  // Loaded when tasks first run: `kraftwerk --help` and commands that run none never load listr2.
  const { Listr } = await import('listr2');
  const list = new Listr(
    items.map((i) => toListr(i, ctx, listOptions?.node)),
    {
      concurrent: listOptions?.concurrent ?? false,
      exitOnError: !listOptions?.keepGoing,
      collectErrors: false,
      registerSignalListeners: false,
      ...rendererFor(options),
    } as never,
  );
  try {
    await list.run();
  } catch (err) {
    throw unwrap(err);
  }
}

function unwrap(err: unknown): unknown {
  // listr2 may wrap errors; surface the original KraftwerkError when there is one.
  if (err instanceof KraftwerkError) return err;
  const inner = (err as { error?: unknown })?.error;
  return inner instanceof Error ? inner : err;
}

/**
 * Run tasks one after the other inside one running task, outside listr2 (the
 * dump inside a load or a destroy, a reload, a data snapshot): each task that
 * is not skipped shows as an output line `plugin: title` of `task`, and its own
 * output goes there too; its title and skip do not change the outer task.
 * Returns the tasks that ran.
 */
export async function runInline<C>(list: readonly RunnableTask<C>[], ctx: C, task?: TaskHandle): Promise<RunnableTask<C>[]> {
  const handle: TaskHandle = { output: (line) => task?.output(line), title: () => {}, skip: () => {} };
  const ran: RunnableTask<C>[] = [];
  for (const t of list) {
    if (t.skip && (await t.skip(ctx))) continue;
    task?.output(`${t.plugin ?? 'core'}: ${t.title}`);
    await t.run(ctx, handle);
    ran.push(t);
  }
  return ran;
}
