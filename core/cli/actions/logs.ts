/**
 * `kraftwerk logs [node] [--process NAME] [-n N] [-f] [--nginx]`: the svlogd
 * logs of the site's services (web, worker processes, cron jobs) and, with
 * --nginx, nginx's access and error log of the site.
 */
import { UsageError } from '../../errors.ts';
import type { CoreKit } from '../kit.ts';
import { processLogDir } from '../../../plugins/runit/commands.ts';
import { asUser, type Script, sh } from '../../shell/sh.ts';
import type { Site } from '../../config/site.ts';
import { connect, nodesOf, singleNode } from './ops.ts';

export interface LogsOptions {
  process?: string;
  lines: number;
  follow: boolean;
  nginx: boolean;
}

/**
 * The options of `logs`, read from the raw words after `logs`: the global `-n`
 * (dry run) would otherwise take `-n N` for itself; logs never change anything,
 * so for them `-n` means lines, as for tail.
 */
export function parseLogsArgs(words: readonly string[]): LogsOptions & { node?: string } {
  const out: LogsOptions & { node?: string } = { lines: 50, follow: false, nginx: false };
  const positional: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const value = (): string => {
      const v = words[++i];
      if (v === undefined) throw new UsageError(`${w} needs a value`);
      return v;
    };
    if (w === '-f' || w === '--follow') out.follow = true;
    else if (w === '--nginx') out.nginx = true;
    else if (w === '-n' || w === '--lines') out.lines = lineCount(value());
    else if (/^-n\d+$/.test(w)) out.lines = lineCount(w.slice(2));
    else if (w.startsWith('--lines=')) out.lines = lineCount(w.slice(8));
    else if (w === '-p' || w === '--process') out.process = value();
    else if (w.startsWith('--process=')) out.process = w.slice(10);
    else if (w === '-c' || w === '--config') i++;
    else if (w.startsWith('-')) continue;
    else positional.push(w);
  }
  if (positional.length > 1) throw new UsageError(`give at most one node, not ${positional.join(' ')}`);
  out.node = positional[0];
  return out;
}

function lineCount(s: string): number {
  if (!/^\d+$/.test(s)) throw new UsageError(`-n expects a number of lines, not ${JSON.stringify(s)}`);
  return Number(s);
}

/** nginx's logs of the site (see the nginx plugin's site template). */
export function nginxLogFiles(site: Site): string[] {
  return [`/var/log/nginx/${site.service}.access.log`, `/var/log/nginx/${site.service}.error.log`];
}

/**
 * Which files to show: one process (`web` is uWSGI; cron jobs are cron-<name>), or all of the site's logs.
 * The site's logs are read as the site user: its log folders are its own, and root must not follow a
 * link the site put there (a `current` pointing at /etc/shadow).
 */
export function logsCommand(site: Site, options: LogsOptions): Script {
  if (options.nginx) return siteLogsCommand(site, options);
  return sh`id -u ${site.user} >/dev/null 2>&1 || { echo ${`kraftwerk: no logs of ${site.name} on this node (is the site deployed?)`} >&2; exit 3; }
${asUser(site.user, siteLogsCommand(site, options))}`;
}

/** The command `logsCommand` runs, before it becomes the site user's (exported for tests). */
export function siteLogsCommand(site: Site, options: LogsOptions): Script {
  const tail = ['tail', '-n', String(options.lines), ...(options.follow ? ['-F'] : [])];
  if (options.nginx) return sh`${tail} ${nginxLogFiles(site)}`;
  if (options.process === 'web') {
    // Both web slots: the live release's log and the one before it (or a new one that failed to start).
    return sh`cd ${site.paths.logs} 2>/dev/null && set -- $(ls -1 web@*/current 2>/dev/null) && [ "$#" -gt 0 ] || { echo ${`kraftwerk: no web log in ${site.paths.logs} on this node (is the site deployed?)`} >&2; exit 3; }
${tail} "$@"`;
  }
  if (options.process) {
    const dir = processLogDir(site, options.process);
    return sh`if [ ! -f ${`${dir}/current`} ]; then
  echo ${`kraftwerk: no log ${dir}/current on this node`} >&2
  echo "logs here: $(cd ${site.paths.logs} 2>/dev/null && for d in */; do [ -f "$d/current" ] && printf '%s ' "\${d%/}"; done)" >&2
  exit 3
fi
${tail} ${`${dir}/current`}`;
  }
  // Every log of the site: tail prints a ==> file <== header before each.
  return sh`cd ${site.paths.logs} 2>/dev/null || { echo ${`kraftwerk: no logs in ${site.paths.logs} (is the site deployed?)`} >&2; exit 3; }
set -- $(ls -1 */current 2>/dev/null)
[ "$#" -gt 0 ] || { echo 'kraftwerk: no logs yet' >&2; exit 3; }
${tail} "$@"`;
}

export async function logsCommandRun(kit: CoreKit, rawWords: readonly string[]): Promise<number> {
  const project = await kit.loadProject();
  const { site } = project;
  const options = parseLogsArgs(rawWords);
  const nodes = options.follow ? [singleNode(project, options.node, 'logs -f')] : nodesOf(project, options.node);
  let worst = 0;
  for (const node of nodes) {
    if (nodes.length > 1) process.stdout.write(`${node === nodes[0] ? '' : '\n'}# ${node}\n`);
    const remote = await connect(kit, project, node);
    // Following: with a pty, tail on the server ends with the connection (SIGHUP) or
    // with Ctrl-C typed on a terminal, instead of lingering until it next writes.
    const pty = options.follow;
    const lf = (c: string) => (pty && !process.stdout.isTTY ? c.replace(/\r\n/g, '\n') : c);
    const result = await remote.exec(logsCommand(site, options), {
      check: false,
      pty,
      onStdout: (c) => process.stdout.write(lf(c)),
      onStderr: (c) => process.stderr.write(c),
    });
    if (result.code !== 0 && result.code !== null && !(pty && result.code === 130)) worst = Math.max(worst, result.code === 3 ? 1 : result.code);
  }
  return worst;
}
