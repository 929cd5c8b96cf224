/**
 * `kraftwerk logs [node] [--process NAME] [-n N] [-f] [--<source>]`: the logs
 * of the site's services and, with a source's flag, that source instead, all
 * from the sources the plugins give (Plugin.logs, LogSource.flag).
 */
import { UsageError } from '../../errors.ts';
import { collectFromPlugins } from '../../engine/registry.ts';
import type { CoreKit } from '../kit.ts';
import { type LogSource, LogSources } from '../../engine/logs.ts';
import type { Plugin } from '../../engine/plugin.ts';
import { asUser, type Script, sh } from '../../shell/sh.ts';
import type { Site } from '../../config/site.ts';
import { commandTopology, connect, nodesOf, singleNode } from './ops.ts';
import { runsHere } from '../../engine/topology.ts';

export interface LogsOptions {
  process?: string;
  lines: number;
  follow: boolean;
  /** A plugin's source chosen by its flag (LogSource.flag) instead of the site's own logs. */
  source?: string;
}

/**
 * The options of `logs`, read from the raw words after `logs`: the global `-n`
 * (dry run) would otherwise take `-n N` for itself; logs never change anything,
 * so for them `-n` means lines, as for tail.
 */
export function parseLogsArgs(words: readonly string[], sourceFlags: readonly string[]): LogsOptions & { node?: string } {
  const out: LogsOptions & { node?: string } = { lines: 50, follow: false };
  const positional: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const value = (): string => {
      const v = words[++i];
      if (v === undefined) throw new UsageError(`${w} needs a value`);
      return v;
    };
    if (w === '-f' || w === '--follow') out.follow = true;
    else if (w.startsWith('--') && sourceFlags.includes(w.slice(2))) out.source = w.slice(2);
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

/** The log sources `plugins` give for `site` (see Plugin.logs). */
export function collectLogSources(plugins: readonly Plugin[], site: Site): LogSources {
  return collectFromPlugins(plugins, 'logs', new LogSources(), site);
}

/**
 * The command that shows the chosen logs. The plugins give the sources (the site's
 * process logs, a web server's access and error log); one that is not root's is
 * read as the site user.
 */
export function logsCommand(site: Site, options: LogsOptions, sources: LogSources): Script {
  const source = chooseSource(site, options, sources);
  const command = siteLogsCommand(site, options, sources);
  if (source.asRoot) return command;
  return sh`id -u ${site.user} >/dev/null 2>&1 || { echo ${`kraftwerk: no logs of ${site.name} on this node (is the site deployed?)`} >&2; exit 3; }
${asUser(site.user, command)}`;
}

/** The command `logsCommand` runs, before it becomes the site user's (exported for tests). */
export function siteLogsCommand(site: Site, options: LogsOptions, sources: LogSources): Script {
  const tail = ['tail', '-n', String(options.lines), ...(options.follow ? ['-F'] : [])];
  return chooseSource(site, options, sources).command(tail, { process: options.process });
}

function chooseSource(site: Site, options: LogsOptions, sources: LogSources): LogSource & { plugin: string } {
  const flag = options.source;
  const source = sources.find(flag);
  if (!source) throw new UsageError(flag ? `no plugin of ${site.name} shows logs for --${flag}` : `no plugin of ${site.name} shows its logs`);
  return source;
}

/** `sourceFlags`: the flags of plugins' sources the CLI frame declared (its help is printed without loading plugins). */
export async function logsCommandRun(kit: CoreKit, rawWords: readonly string[], sourceFlags: readonly string[]): Promise<number> {
  const project = await kit.loadProject();
  const { site } = project;
  const options = parseLogsArgs(rawWords, sourceFlags);
  const sources = collectLogSources(project.plugins, site);
  const source = chooseSource(site, options, sources);
  // In a group split by role, the logs are on the nodes where the plugin that gives them runs.
  const runsOn = project.plugins.find((p) => p.name === source.plugin)?.runsOn;
  const all = nodesOf(project, options.node);
  const topology = await commandTopology(kit, project, all);
  const having = all.filter((n) => runsHere(runsOn, { topology: topology.get(n)! }));
  if (!having.length) {
    throw new UsageError(`no node of ${options.node ?? 'the default node'} (${all.join(', ')}) has these logs: ${source.plugin} runs on nodes with the role ${runsOn!.join(' or ')}`, {
      hint: `Name a node with that role: kraftwerk logs <node>${options.source ? ` --${options.source}` : ''}`,
    });
  }
  const nodes = options.follow ? [singleNode(project, having.length === 1 ? having[0] : options.node, 'logs -f')] : having;
  let worst = 0;
  for (const node of nodes) {
    if (nodes.length > 1) process.stdout.write(`${node === nodes[0] ? '' : '\n'}# ${node}\n`);
    const remote = await connect(kit, project, node);
    // Following: with a pty, tail on the server ends with the connection (SIGHUP) or
    // with Ctrl-C typed on a terminal, instead of lingering until it next writes.
    const pty = options.follow;
    const lf = (c: string) => (pty && !process.stdout.isTTY ? c.replace(/\r\n/g, '\n') : c);
    const result = await remote.exec(logsCommand(site, options, sources), {
      check: false,
      pty,
      onStdout: (c) => process.stdout.write(lf(c)),
      onStderr: (c) => process.stderr.write(c),
    });
    if (result.code !== 0 && result.code !== null && !(pty && result.code === 130)) worst = Math.max(worst, result.code === 3 ? 1 : result.code);
  }
  return worst;
}
