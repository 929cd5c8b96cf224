/**
 * `kraftwerk status [node] [--json]`: per site on the node its live release,
 * its services and their uptime (from the plugins' status parts: runit's web
 * and worker services), disk use and last backup; the node-wide processes the
 * plugins name (nginx, PostgreSQL, …); plus whatever the project's plugins
 * report through the `status` hook (TLS expiry, …). One read-only command per
 * node gathers the layout facts. --json prints an array with one object per
 * node (a single node too), for scripts.
 */
import { StatusReport } from '../../engine/context.ts';
import { MANIFEST_FILE } from '../../lifecycle/dumps.ts';
import type { CoreKit } from '../kit.ts';
import { SITES_DIR } from '../../lifecycle/probe.ts';
import { type NodeStatus, NodeStatusParts, type SiteStatus } from '../../engine/status.ts';
import type { Plugin } from '../../engine/plugin.ts';
import type { Site } from '../../config/site.ts';
import { type Script, raw, sh } from '../../shell/sh.ts';
import { applyPlugins } from './deploy.ts';
import { UsageError } from '../../errors.ts';
import { collectFromPlugins } from '../../engine/registry.ts';
import { commandTopology, nodeContext, nodesOf } from './ops.ts';

export type { NodeStatus, SiteStatus } from '../../engine/status.ts';

/** The status parts of `plugins` (see Plugin.nodeStatus). */
export function collectNodeStatusParts(plugins: readonly Plugin[], site: Site): NodeStatusParts {
  return collectFromPlugins(plugins, 'nodeStatus', new NodeStatusParts(), site);
}

/** One read-only command: `key value…` lines for the node and every Kraftwerk site on it. */
export function statusCommand(parts: NodeStatusParts): Script {
  const systemLines = parts.processes
    .map((p) => sh`echo ${`system ${p.name} `}"$(pgrep -x ${p.processName} >/dev/null && echo running || echo stopped)"`.text)
    .join('\n');
  // Each plugin's part runs in a subshell: it cannot change the loop's variables.
  const siteLines = parts.siteParts.map((p) => `  (\n${p.script.text.replace(/^/gm, '    ')}\n  )`).join('\n');
  return sh`echo "uptime $(cut -d' ' -f1 /proc/uptime)"
${raw(systemLines)}
for f in ${raw(SITES_DIR)}/*/domains; do
  [ -f "$f" ] || continue
  s=$(basename "$(dirname "$f")")
  r=/srv/$s
  echo "site $s"
  echo "domains $(tr '\\n' ' ' < "$f")"
  cur=$(basename "$(readlink "$r/current" 2>/dev/null)" 2>/dev/null)
  echo "release $cur"
  [ -n "$cur" ] && [ -f "$r/.kraftwerk/releases/$cur.json" ] && echo "record $(tr -d '\\n' < "$r/.kraftwerk/releases/$cur.json")"
${raw(siteLines)}
  for part in releases venvs shared/uploads backups; do echo "disk $part $(du -sk "$r/$part" 2>/dev/null | cut -f1)"; done
  echo "lastdump $(ls -1 "$r/backups" 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z' | sort | tail -n 1)"
  echo "lastbackup $(for d in $(ls -1 "$r/backups" 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z' | sort -r); do grep -q '"kind": *"backup"' "$r/backups/$d/${raw(MANIFEST_FILE)}" 2>/dev/null && { echo "$d"; break; }; done)"
done
true`;
}

export function parseStatus(node: string, output: string, parts: NodeStatusParts): NodeStatus {
  const status: NodeStatus = { node, system: {}, sites: [] };
  let site: SiteStatus | undefined;
  for (const line of output.split('\n')) {
    const sp = line.indexOf(' ');
    const key = sp < 0 ? line : line.slice(0, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1).trim();
    if (key === 'uptime') status.uptimeSeconds = Math.round(Number(value)) || undefined;
    else if (key === 'system') {
      const [name, state] = value.split(' ');
      if (name) status.system[name] = state === 'running' ? 'running' : 'stopped';
    } else if (key === 'site') {
      site = { name: value, domains: [], services: [], disk: { releases: 0, venvs: 0, uploads: 0, backups: 0 } };
      status.sites.push(site);
    } else if (!site) continue;
    else if (key === 'domains') site.domains = value.split(/\s+/).filter(Boolean);
    else if (key === 'release') site.release = value || undefined;
    else if (key === 'record') {
      try {
        const r = JSON.parse(value) as Record<string, unknown>;
        site.releaseInfo = { time: r.time as string, deployer: r.deployer as string, revision: r.revision as string };
      } catch {
        // An unreadable record only loses the details.
      }
    } else if (key === 'disk') {
      const [part = '', kb = ''] = value.split(' ');
      const n = Number(kb) || 0;
      if (part === 'releases') site.disk.releases = n;
      else if (part === 'venvs') site.disk.venvs = n;
      else if (part === 'shared/uploads') site.disk.uploads = n;
      else if (part === 'backups') site.disk.backups = n;
    } else if (key === 'lastdump') site.lastDump = value || undefined;
    else if (key === 'lastbackup') site.lastBackup = value || undefined;
    else parts.siteParts.find((p) => p.keys.includes(key))?.read(key, value, site);
  }
  return status;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function formatSize(kb: number): string {
  if (kb < 1024) return `${kb} KB`;
  if (kb < 1024 * 1024) return `${(kb / 1024).toFixed(1)} MB`;
  return `${(kb / 1024 / 1024).toFixed(1)} GB`;
}

function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.map(formatValue).join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function formatStatus(status: NodeStatus): string {
  const out: string[] = [];
  const system = Object.entries(status.system)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const roles = status.roles ? ` [${status.roles.join(', ')}]` : '';
  out.push(`node ${status.node}${roles}${status.uptimeSeconds ? ` (up ${formatDuration(status.uptimeSeconds)})` : ''}: ${system}`);
  if (!status.sites.length) out.push('  no Kraftwerk sites on this node');
  for (const site of status.sites) {
    const info = site.releaseInfo;
    const details = info ? ` (${[info.time?.replace(/\.\d+Z$/, 'Z'), info.deployer && `by ${info.deployer}`, info.revision && `rev ${info.revision}`].filter(Boolean).join(', ')})` : '';
    out.push('');
    out.push(`site ${site.name}: ${site.release ? `release ${site.release}${details}` : 'not deployed'}`);
    if (site.domains.length) out.push(`  domains   ${site.domains.join(' ')}`);
    site.services.forEach((s, i) => {
      const release = s.release ? `; release ${s.release}${s.release === site.release && s.state === 'run' ? ' (live)' : ''}` : '';
      const state = `${s.state}${s.pid ? ` (pid ${s.pid})` : ''}${s.seconds !== undefined ? ` for ${formatDuration(s.seconds)}` : ''}${s.note ? `; ${s.note}` : ''}${release}`;
      out.push(`  ${i === 0 ? 'services ' : '         '} ${s.service.padEnd(Math.max(...site.services.map((x) => x.service.length)))}  ${state}`);
    });
    const d = site.disk;
    out.push(`  disk      releases ${formatSize(d.releases)}, venvs ${formatSize(d.venvs)}, uploads ${formatSize(d.uploads)}, backups ${formatSize(d.backups)}`);
    out.push(`  backups   last ${site.lastBackup ?? 'never'}${site.lastDump && site.lastDump !== site.lastBackup ? ` (last dump ${site.lastDump})` : ''}`);
    for (const [plugin, values] of Object.entries(site.plugins ?? {})) {
      for (const [key, value] of Object.entries(values)) out.push(`  ${`${plugin}`.padEnd(9)} ${key}: ${formatValue(value)}`);
    }
  }
  return out.join('\n');
}

export async function statusCommandRun(kit: CoreKit, nodeArg: string | undefined, options: { json?: boolean }): Promise<void> {
  // Outside a project folder status still works for a named node: every site on it, without plugin details.
  const project = await kit.maybeProject();
  if (!project && !nodeArg) {
    throw new UsageError('no node given', { hint: 'Name a node (kraftwerk status my.server.tld), or run it in a project folder.' });
  }
  const hooks = project ? applyPlugins(project).hooks : undefined;
  // What every node runs is reported also for sites of other projects: the node's plugins give the parts.
  const { plugins, site: nodeSite } = await kit.nodeWide(project);
  const parts = collectNodeStatusParts(plugins, nodeSite);
  const results: NodeStatus[] = [];
  const nodes = project ? nodesOf(project, nodeArg) : [nodeArg!];
  const topology = project ? await commandTopology(kit, project, nodes) : undefined;
  for (const node of nodes) {
    const remote = await kit.connect(await kit.resolveNode(node, project));
    const { stdout } = await remote.exec(statusCommand(parts));
    const status = parseStatus(node, stdout, parts);
    const place = topology?.get(node);
    if (place?.declared) status.roles = [...place.roles].sort();
    if (project && hooks) {
      const { site } = project;
      // The project's site first; it also gets what its plugins report.
      status.sites.sort((a, b) => Number(b.name === site.name) - Number(a.name === site.name) || a.name.localeCompare(b.name));
      const own = status.sites.find((s) => s.name === site.name);
      if (own && !remote.dryRun) {
        const report = new StatusReport();
        await hooks.status.promise(nodeContext(kit, site, node, remote, place), report);
        own.plugins = report.values;
      } else if (!own) {
        status.sites.unshift({ name: site.name, domains: site.domains, services: [], disk: { releases: 0, venvs: 0, uploads: 0, backups: 0 } });
      }
    }
    results.push(status);
    if (!options.json) process.stdout.write(`${results.length > 1 ? '\n' : ''}${formatStatus(status)}\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}
