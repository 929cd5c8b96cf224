/** Values in a crontab (see core's ConfigValueError for what every escaper promises). */
import { ConfigValueError, describeChar, LINE_BREAKING } from '../../core/index.ts';

/**
 * One field of a crontab line before the command (a schedule field, `@daily`,
 * the user): one word of the characters cron's syntax has, so that no field
 * can end the line or shift the fields after it.
 */
export function cronField(value: string): string {
  if (/^[A-Za-z0-9@*,/_-]+$/.test(value)) return value;
  const bad = [...value].find((c) => !/[A-Za-z0-9@*,/_-]/.test(c));
  throw new ConfigValueError('crontab', value, bad === undefined ? 'an empty field' : `${describeChar(bad)} is not allowed in a crontab field`);
}

/** A schedule ("*\/5 * * * *" or @daily) as crontab fields: each field checked, one space between them. */
export function cronSchedule(schedule: string): string {
  const bad = LINE_BREAKING.exec(schedule);
  if (bad) throw new ConfigValueError('crontab', schedule, `${describeChar(bad[0])} is not allowed in a schedule`);
  return schedule.trim().split(/[ \t]+/).map(cronField).join(' ');
}

/**
 * The command part of a crontab line: cron turns `%` into a newline (the
 * command's stdin) unless it is escaped, so each is; a newline would start
 * another line, so it is refused, as are other control characters but tab.
 */
export function cronCommand(command: string): string {
  const bad = LINE_BREAKING.exec(command);
  if (bad) throw new ConfigValueError('crontab', command, `${describeChar(bad[0])} is not allowed in a crontab command`);
  return command.replace(/%/g, '\\%');
}
