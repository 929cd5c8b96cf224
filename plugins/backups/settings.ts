/**
 * The settings of the backups plugin: `backups:` in kraftwerk.yaml. Where its
 * values end up:
 *
 *     key                reaches                                 checked as
 *     backups.schedule   crontab line (the cron plugin writes it)  cron fields only (the cron plugin's check)
 *     backups.keep       the backup script's rotation (a number)   a positive integer
 */
import { z } from '../../core/index.ts';
import { cronScheduleSetting } from '../cron/settings.ts';

/** The keys of kraftwerk.yaml the backups plugin owns; the cron plugin schedules the backup, `kraftwerk backup` rotates by `keep`. */
export const BACKUPS_SETTINGS = {
  backups: z
    .strictObject({
      schedule: cronScheduleSetting.default('@daily').describe('Cron schedule of automatic backups'),
      keep: z.number().int().min(1).default(7).describe('Backups kept on the server'),
      verify: z
        .boolean()
        .default(false)
        .describe('Restore each backup into scratch space on the node and check it (kraftwerk backup verify) before it counts'),
    })
    .optional()
    .describe('Scheduled backups of the database and uploads'),
};
