/**
 * cron: the site's scheduled jobs in /etc/cron.d/kraftwerk-<site>: the `cron:`
 * entries and the scheduled backup when `backups:` is set.
 *
 * Each `cron:` entry runs as the site user (the user field of its line: no
 * root step at all), under `flock -n` so a slow run never overlaps the next
 * one, with its output to svlogd (/var/log/kraftwerk/<site>/cron-<name>/, run
 * as the site too). The command itself is not in the crontab: it is a script
 * in the release, releases/<id>/.kraftwerk/cron/<name> (root's, readable by
 * the site's group), run through `current`, so a job runs the code and
 * environment of the live release, and no value of kraftwerk.yaml but the
 * validated schedule and name reaches the crontab (`%`, quotes, newlines…).
 * The crontab is written by the switch (RemoteFile.atSwitch): new lines never
 * run against the old release, a deploy that fails before its switch leaves
 * the live ones, and a rollback brings back the old release's.
 *
 * setup-node makes sure a cron daemon runs (supervised by runit where there is
 * no systemd).
 */
import {
  type Script,
  ConfigError,
  definePlugin,
  releaseConfig,
  sh,
  siteEnvScript,
  siteLogRootCommand,
  Stage,
  type Hooks,
  type RemoteFile,
  type Site,
  settingsOf,
} from '../../core/index.ts';
import { programCommand, siteDirs } from '../runit/commands.ts';
import { backupScriptPath } from '../backups/script.ts';
import { BACKUPS_SETTINGS } from '../backups/settings.ts';
import { CRON_SETTINGS, type CronEntry } from './settings.ts';

const PLUGIN_NAME = 'cron';

/** cron ignores files in /etc/cron.d whose names contain a dot; site names never do. */
export function cronFilePath(site: Site): string {
  return `/etc/cron.d/kraftwerk-${site.name}`;
}


export interface CronJob {
  name: string;
  /** Fields joined by single spaces. */
  schedule: string;
  /** A `cron:` entry: its command, run as the site user. Absent for the backup, which root runs. */
  command?: string;
}

/** Job names: the entry's own, else job-1, job-2, … by position. */
export function cronJobName(entry: CronEntry, index: number): string {
  return entry.name ?? `job-${index + 1}`;
}

/**
 * The schedule as it goes into the crontab. The schema allows only cron's own
 * syntax; this keeps anything else (a newline between fields would start a
 * crontab line of its own) out regardless.
 */
function crontabSchedule(site: Site, key: string, schedule: string): string {
  const fields = schedule.trim().split(/[ \t]+/);
  if (!fields.every((f) => /^[@A-Za-z0-9*,/-]+$/.test(f)) || !(fields.length === 5 || (fields.length === 1 && fields[0]!.startsWith('@')))) {
    throw new ConfigError(site.configFile, key, `expected five cron fields or @daily etc. on one line, found ${JSON.stringify(schedule)}`);
  }
  return fields.join(' ');
}

/**
 * The site's jobs, checked: each name once (it names the job's script, lock
 * and log folder), `backup` left to `backups:`, no NUL byte in a command.
 * Errors name the key, before anything touches a server.
 */
export function cronJobs(site: Site): CronJob[] {
  const seen = new Map<string, number>();
  const { cron } = settingsOf(site, CRON_SETTINGS);
  const { backups } = settingsOf(site, BACKUPS_SETTINGS);
  const jobs: CronJob[] = cron.map((entry, i) => {
    const name = cronJobName(entry, i);
    const key = `cron[${i}]`;
    if (seen.has(name)) {
      throw new ConfigError(site.configFile, `${key}.name`, `job name ${JSON.stringify(name)} is used twice (also by cron[${seen.get(name)}])`, {
        hint: 'Give each cron job its own name: it names the job\'s lock and log folder.',
      });
    }
    if (name === 'backup' && backups) {
      throw new ConfigError(site.configFile, `${key}.name`, 'the name "backup" is taken by the scheduled backups (backups:)', { hint: 'Rename the job.' });
    }
    if (entry.command.includes('\0')) throw new ConfigError(site.configFile, `${key}.command`, 'a command cannot contain a NUL byte');
    seen.set(name, i);
    return { name, schedule: crontabSchedule(site, `${key}.schedule`, entry.schedule), command: entry.command };
  });
  if (backups) jobs.push({ name: 'backup', schedule: crontabSchedule(site, 'backups.schedule', backups.schedule) });
  return jobs;
}

/** The log folder of a job: /var/log/kraftwerk/<site>/cron-<name> (the site's; svlogd writes it as the site). */
export function cronLogDir(site: Site, name: string): string {
  return `${site.paths.logs}/cron-${name}`;
}

/**
 * The flock files of the site's jobs: /srv/<site>/shared/locks/, the site
 * user's (0700) inside a folder only root can change. Only that site's jobs
 * (and root) can open them; another site cannot take a lock first.
 */
export function cronLockDir(site: Site): string {
  return `${site.paths.shared}/locks`;
}

export function cronLockFile(site: Site, job: CronJob): string {
  // The backup runs as root: its lock is in root's own state folder (0700), out of every site's reach.
  return job.command === undefined ? `${site.paths.state}/backup.lock` : `${cronLockDir(site)}/cron-${job.name}.lock`;
}

/** A job's script in a release: releases/<id>/.kraftwerk/cron/<name>. */
export function cronScriptPath(releasePath: string, name: string): string {
  return `${releaseConfig(releasePath).dir}/cron/${name}`;
}

/**
 * The script of a `cron:` job in `release`, run by cron as the site user: in
 * that release (not `current`, which may switch while it starts), with its
 * environment and venv. root:<site group> 0750, in the release's .kraftwerk.
 */
export function cronScriptFile(site: Site, release: { id: string; path: string; venv: string }, job: CronJob): RemoteFile {
  const run = siteEnvScript(site, { dir: release.path, venv: release.venv, command: programCommand(job.command ?? 'true') });
  return {
    path: cronScriptPath(release.path, job.name),
    content: `#!/bin/sh
# Kraftwerk: cron job ${job.name} of site ${site.name}, release ${release.id}. Run by cron as ${site.user} (${cronFilePath(site)}).
${run.text}
`,
    mode: 0o750,
    owner: 'root',
    group: site.user,
  };
}

/**
 * One crontab line. Only names the schema checked (site, job) and fixed paths
 * make it up; cron takes `%` as a newline, and none can occur here.
 */
export function cronLine(site: Site, job: CronJob): string {
  const log = cronLogDir(site, job.name);
  const lock = cronLockFile(site, job);
  const line =
    job.command === undefined
      ? // root: flock in its own folder, the script root wrote; only svlogd runs as the site (from /:
        // cron starts root's jobs in /root, which svlogd, as the site, could not open).
        sh`root cd / && flock -n ${lock} sh ${backupScriptPath(site)} 2>&1 | chpst -u ${`${site.user}:${site.user}`} svlogd -tt ${log}`
      : sh`${site.user} flock -n ${lock} ${cronScriptPath(site.paths.current, job.name)} 2>&1 | svlogd -tt ${log}`;
  if (line.text.includes('%') || line.text.includes('\n')) throw new Error(`a crontab line cannot hold % or a newline: ${line.text}`);
  return `${job.schedule} ${line.text}`;
}

export function renderCronFile(site: Site, jobs: readonly CronJob[]): string {
  return [
    `# Kraftwerk: scheduled jobs of site ${site.name}. Written by \`kraftwerk deploy\` when the release goes live; edits are overwritten.`,
    '# Jobs of cron: run as the site user; the command is releases/<id>/.kraftwerk/cron/<name> of the live release.',
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'MAILTO=""',
    ...jobs.flatMap((job) => [`# ${job.name}`, cronLine(site, job)]),
    '',
  ].join('\n');
}

/**
 * Clean-up of what a Kraftwerk before 0.2 left, run as root at deploy time
 * before the site's folders are made: its crontab (root lines that made the
 * log folder the site's on every run) goes now rather than at the switch,
 * and the log folder is root's again in case one of them just ran; its lock
 * files in /run/lock go (find -delete removes a link, never its target).
 */
export function legacyCronCleanupCommand(site: Site): Script {
  const file = cronFilePath(site);
  // Its lines ran `install -d -o <site user> …` as root: that text tells such a file.
  return sh`if grep -qs ' root install -d ' ${file}; then rm -f ${file}; ${siteLogRootCommand(site)}; fi
find /run/lock -maxdepth 1 -name ${`kraftwerk-${site.name}-cron-*.lock`} -delete 2>/dev/null; true`;
}

/** Make a cron daemon run now and after a reboot; prints what it changed. */
export function cronDaemonCommand(): Script {
  return sh`if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  systemctl is-enabled --quiet cron || { systemctl enable --quiet cron; echo 'enabled cron at boot'; }
  systemctl is-active --quiet cron || { systemctl start cron; echo 'started cron'; }
elif command -v runsv >/dev/null && [ -d /etc/service ] && pgrep -x runsvdir >/dev/null; then
  # No systemd (a container, a sandbox): runit supervises cron, and brings it back after a reboot.
  if [ ! -x /etc/sv/cron/run ]; then
    install -d -m 0755 /etc/sv/cron
    printf '#!/bin/sh\\n# Kraftwerk: cron supervised by runit (no systemd on this host).\\nexec 2>&1\\nexec cron -f\\n' > /etc/sv/cron/run
    chmod 0755 /etc/sv/cron/run
    echo 'wrote /etc/sv/cron/run'
  fi
  if [ ! -e /etc/service/cron ]; then
    # A cron started by its init script would keep runit's from starting.
    service cron stop >/dev/null 2>&1 || true
    ln -s /etc/sv/cron /etc/service/cron
    echo 'cron supervised by runit'
  fi
else
  pgrep -x cron >/dev/null || { service cron start >/dev/null; echo 'started cron'; }
fi`;
}

export default definePlugin({
  name: PLUGIN_NAME,
  // One node runs the jobs, so a job never runs twice: the first worker node, else the first web node, unless one says cron.
  roles: [{ name: 'cron', description: 'runs the cron jobs and the backup schedule', single: true, defaultOn: ['worker', 'web'] }],
  runsOn: ['cron'],
  init: {
    examples: ({ framework }) => ({
      cron: [
        framework === 'django'
          ? { name: 'sessions', schedule: '30 3 * * *', command: 'python manage.py clearsessions' }
          : { name: 'report', schedule: '*/15 * * * *', command: 'python -m scripts.report' },
      ],
    }),
  },
  description: 'cron jobs (`cron:` and the `backups:` schedule) in /etc/cron.d, each under flock',
  nodeStatus: (status) => status.process('cron', 'cron'),
  settings: CRON_SETTINGS,
  apply(hooks: Hooks, site: Site) {
    const jobs = cronJobs(site);
    const file = cronFilePath(site);

    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add('cron', 'util-linux');
      tasks.add({
        title: 'cron running',
        stage: Stage.LATE,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(cronDaemonCommand());
          const changes = stdout.split('\n').filter(Boolean);
          ctx.changes.push(...changes);
          task.title(changes.length ? `cron: ${changes.join('; ')}` : 'cron running (unchanged)');
        },
      });
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      if (jobs.length) {
        const dirs = siteDirs(ctx);
        dirs.add(cronLockDir(site), { mode: 0o700 });
        for (const job of jobs) dirs.add(cronLogDir(site, job.name));
      }
      siteDirs(ctx).before.push(legacyCronCleanupCommand(site));
      tasks.add({
        title: 'cron jobs',
        run: async (ctx, task) => {
          if (jobs.length) {
            for (const job of jobs) if (job.command !== undefined) ctx.files.add(cronScriptFile(site, ctx.release, job));
            ctx.files.add({ path: file, content: renderCronFile(site, jobs), mode: 0o644, owner: 'root', group: 'root', atSwitch: true });
            task.title(`cron jobs (${jobs.map((j) => j.name).join(', ')})`);
            return;
          }
          // No jobs configured: a file left from an earlier deploy goes when this release goes live.
          ctx.files.remove(file, { atSwitch: true });
          task.title('cron jobs (none)');
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'remove cron jobs',
        stage: Stage.EARLY,
        run: async (ctx) => {
          await ctx.remote.exec(sh`rm -f ${file} && find /run/lock -maxdepth 1 -name ${`kraftwerk-${site.name}-cron-*.lock`} -delete`);
        },
      });
    });

    hooks.status.tapPromise(PLUGIN_NAME, async (_ctx, report) => {
      if (jobs.length) report.add('jobs', jobs.map((j) => `${j.name} (${j.schedule})`));
    });
  },
});
