/**
 * cron: the site's scheduled jobs in /etc/cron.d/kraftwerk-<site>: the `cron:`
 * entries, each run as the site user in the live release with the site's
 * environment, and the scheduled backup when `backups:` is set. Every job is
 * wrapped in `flock -n`, so a slow run never overlaps the next one, and its
 * output goes to svlogd (/var/log/kraftwerk/<site>/cron-<name>/).
 * setup-node makes sure a cron daemon runs (supervised by runit where there is
 * no systemd).
 */
import {
  backupScriptPath,
  type Command,
  currentVenv,
  definePlugin,
  inSiteEnv,
  sh,
  Stage,
  type CronEntry,
  type Hooks,
  type Site,
} from '../../core/index.ts';

const PLUGIN_NAME = 'cron';

/** cron ignores files in /etc/cron.d whose names contain a dot; site names never do. */
export function cronFilePath(site: Site): string {
  return `/etc/cron.d/kraftwerk-${site.name}`;
}

export interface CronJob {
  name: string;
  schedule: string;
  /** Runs as root from the crontab: drops to the site user itself where it should. */
  command: Command;
}

/** Job names: the entry's own, else job-1, job-2, … by position. */
export function cronJobName(entry: CronEntry, index: number): string {
  return entry.name ?? `job-${index + 1}`;
}

export function cronJobs(site: Site): CronJob[] {
  const jobs: CronJob[] = site.config.cron.map((entry, i) => ({
    name: cronJobName(entry, i),
    schedule: entry.schedule,
    command: inSiteEnv(site, { dir: site.paths.current, venv: currentVenv(site), command: entry.command }),
  }));
  if (site.config.backups) {
    jobs.push({ name: 'backup', schedule: site.config.backups.schedule, command: sh`sh ${backupScriptPath(site)}` });
  }
  return jobs;
}

/** The log folder of a job: /var/log/kraftwerk/<site>/cron-<name>. */
export function cronLogDir(site: Site, name: string): string {
  return `${site.paths.logs}/cron-${name}`;
}

export function cronLockFile(site: Site, name: string): string {
  return `/run/lock/kraftwerk-${site.name}-cron-${name}.lock`;
}

/**
 * One crontab line. `%` means newline to cron, so every `%` of the command is
 * escaped; the line runs under /bin/sh with the PATH set at the top of the file.
 */
export function cronLine(site: Site, job: CronJob): string {
  const log = cronLogDir(site, job.name);
  const line = sh`install -d -m 0750 -o ${site.user} -g adm ${site.paths.logs} ${log} && { flock -n ${cronLockFile(site, job.name)} ${job.command} 2>&1 | svlogd -tt ${log}; }`;
  return `${job.schedule} root ${line.text.replace(/%/g, '\\%')}`;
}

export function renderCronFile(site: Site, jobs: readonly CronJob[]): string {
  return [
    `# Kraftwerk: scheduled jobs of site ${site.name}. Written by \`kraftwerk deploy\`; edits are overwritten.`,
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'MAILTO=""',
    ...jobs.flatMap((job) => [`# ${job.name}`, cronLine(site, job)]),
    '',
  ].join('\n');
}

/** Make a cron daemon run now and after a reboot; prints what it changed. */
export function cronDaemonCommand(): Command {
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
  description: 'cron jobs (`cron:` and the `backups:` schedule) in /etc/cron.d, each under flock',
  apply(hooks: Hooks, site: Site) {
    const jobs = cronJobs(site);
    const file = cronFilePath(site);

    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add(PLUGIN_NAME, 'cron', 'util-linux');
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

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'cron jobs',
        run: async (ctx, task) => {
          if (jobs.length) {
            ctx.files.add({ path: file, content: renderCronFile(site, jobs), mode: 0o644, owner: 'root', group: 'root' });
            task.title(`cron jobs (${jobs.map((j) => j.name).join(', ')})`);
            return;
          }
          // No jobs configured: a file left from an earlier deploy goes (with the other files, in one round trip).
          ctx.files.remove(file);
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
      if (jobs.length) report.add(PLUGIN_NAME, 'jobs', jobs.map((j) => `${j.name} (${j.schedule})`));
    });
  },
});
