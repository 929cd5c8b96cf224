/**
 * The settings of the processes plugin: `processes:` in kraftwerk.yaml. Where
 * its values end up, and what keeps them from adding a line there:
 *
 *     key          reaches                                          checked as
 *     processes    runit service and log folder names, run script   names; commands on one line, no NUL
 */
import { singleLine, z } from '../../core/index.ts';

/** The keys of kraftwerk.yaml the processes plugin owns. */
export const PROCESSES_SETTINGS = {
  processes: z
    .record(
      z.string().regex(/^[a-z][a-z0-9_-]{0,39}$/, 'a process name (lower-case letters, digits, - and _, at most 40 characters)'),
      singleLine('a command'),
    )
    .default({})
    .describe('Worker processes supervised by runit: name → command'),
};
