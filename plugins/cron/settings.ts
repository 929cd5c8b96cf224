/**
 * The settings of the cron plugin: `cron:` in kraftwerk.yaml. Where its values
 * end up, and what keeps them from adding a line there (the crontab escapers
 * in escape.ts are the second line):
 *
 *     key                 reaches                                     checked as
 *     cron[].name         crontab line, log folder, lock file names   a short name
 *     cron[].schedule     crontab line                                cron fields only
 *     cron[].command      the job's script in the release (quoted)    one line, no control characters
 *
 * The schedule check is also that of `backups.schedule` (the backups plugin's).
 */
import { singleLine, z } from '../../core/index.ts';

const cronFields = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

const CRON_EXPECTED =
  'a cron schedule: five fields, minute hour day-of-month month day-of-week ("*/5 * * * *", "30 2 * * mon-fri"), or @hourly, @daily, @weekly, @monthly, @yearly, @reboot';

/**
 * Why a cron schedule is invalid, or undefined when it is fine. The schedule
 * ends up in a crontab line, so anything but the documented syntax is refused.
 */
export function cronScheduleProblem(schedule: string): string | undefined {
  if (/^@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(schedule)) return undefined;
  // Fields are separated by spaces and tabs only: a newline would end the crontab line.
  if (!/^[ \t]*[^\s]+([ \t]+[^\s]+)*[ \t]*$/.test(schedule)) return 'it must be on one line, its fields separated by spaces';
  const fields = schedule.trim().split(/[ \t]+/);
  if (fields.length !== 5) return `it has ${fields.length} field${fields.length === 1 ? '' : 's'}, not 5`;
  for (const [i, field] of fields.entries()) {
    const spec = cronFields[i]!;
    const names: readonly string[] = 'names' in spec ? spec.names : [];
    const value = (token: string): number | undefined => {
      if (/^\d+$/.test(token)) return Number(token);
      const n = names.indexOf(token.toLowerCase());
      return n < 0 ? undefined : n + spec.min;
    };
    for (const part of field.split(',')) {
      const m = /^(\*|([0-9a-zA-Z]+)(?:-([0-9a-zA-Z]+))?)(?:\/(\d+))?$/.exec(part);
      const bad = `the ${spec.name} field "${field}" is not valid (${spec.min}-${spec.max}${names.length ? `, ${names[0]}-${names.at(-1)}` : ''}, *, ranges a-b, lists a,b and steps */n)`;
      if (!m) return bad;
      const [, , from, to, step] = m;
      for (const token of [from, to]) {
        if (token === undefined) continue;
        const v = value(token);
        if (v === undefined || v < spec.min || v > spec.max) return bad;
      }
      if (step !== undefined && Number(step) < 1) return bad;
    }
  }
  return undefined;
}

/** A cron schedule; the issue says what is wrong with it (`params.detail`) besides what is expected. Also `backups.schedule`. */
export const cronScheduleSetting = z.string().superRefine((s, ctx) => {
  const detail = cronScheduleProblem(s);
  if (detail) ctx.addIssue({ code: 'custom', message: CRON_EXPECTED, params: { detail } });
});

const cronEntry = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'a short name (lower-case letters, digits, - and _, at most 40 characters)')
    .optional()
    .describe('Short name shown in logs; also names its log folder and lock file'),
  schedule: cronScheduleSetting.describe('Five cron fields ("*/5 * * * *") or @hourly, @daily, …'),
  command: singleLine('a command').describe('Shell command, run in the current release with the site environment'),
});

/** The keys of kraftwerk.yaml the cron plugin owns. */
export const CRON_SETTINGS = {
  cron: z.array(cronEntry).default([]).describe('Scheduled commands: {name, schedule, command}'),
};

export type CronEntry = z.output<typeof cronEntry>;
