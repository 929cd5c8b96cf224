import type { RunnableTask } from './runner.ts';

/** One task's wall time in a command. */
export interface TaskTiming {
  /** The phase (`preSync`…), with `@node` in a group of nodes. */
  phase: string;
  task: string;
  ms: number;
  start: number;
  end: number;
}

/**
 * The wall time of each task of a command, for `--timings`: recorded around each task's run
 * (a skipped task has none), printed at the end one per line, then each phase's total (its first
 * start to its last end: a group's nodes overlap) and the command's.
 *
 *     timings: cli start-up 92 ms
 *     timings: preSync inspect node 31 ms
 *     timings: preSync total 130 ms
 *     timings: deploy total 1012 ms
 *
 * Every line is `timings: <phase> <task> <ms> ms`: the phase is one word, the task the rest.
 */
export class Timings {
  readonly rows: TaskTiming[] = [];

  /** The same tasks, each timed under `phase`. */
  wrap<C>(tasks: RunnableTask<C>[], phase: string): RunnableTask<C>[] {
    return tasks.map((t) => ({
      ...t,
      run: async (ctx: C, handle) => {
        const start = performance.now();
        try {
          await t.run(ctx, handle);
        } finally {
          const end = performance.now();
          this.rows.push({ phase, task: t.plugin && t.plugin !== 'core' ? `${t.plugin}: ${t.title}` : t.title, ms: end - start, start, end });
        }
      },
    }));
  }

  /** The lines `--timings` prints; `startedAt` is when the command began (performance.now()). */
  lines(command: string, startedAt: number): string[] {
    const ms = (n: number) => `${Math.round(n)} ms`;
    const out = [`timings: cli start-up ${ms(startedAt)}`];
    const phases = new Map<string, { start: number; end: number }>();
    for (const r of [...this.rows].sort((a, b) => a.start - b.start)) {
      out.push(`timings: ${r.phase} ${r.task} ${ms(r.ms)}`);
      const p = phases.get(r.phase);
      phases.set(r.phase, p ? { start: Math.min(p.start, r.start), end: Math.max(p.end, r.end) } : { start: r.start, end: r.end });
    }
    for (const [phase, p] of phases) out.push(`timings: ${phase} total ${ms(p.end - p.start)}`);
    out.push(`timings: ${command} total ${ms(performance.now() - startedAt)}`);
    return out;
  }
}
