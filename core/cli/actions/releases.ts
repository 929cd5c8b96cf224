import type { CoreKit } from '../kit.ts';
import { describeHolder, forceUnlockCommand } from '../../lifecycle/lock.ts';
import { expandNodes } from '../../remote/node.ts';
import { type Script, sh } from '../../shell/sh.ts';
import type { Site } from '../../config/site.ts';
import type { StoredRelease } from '../../lifecycle/rollback.ts';

/** A release as `releases` lists it: its stored record, and where it stands. */
export interface ReleaseRecord extends StoredRelease {
  status: 'live' | 'previous' | 'good' | 'failed';
}

/** Lists release folders, their records and the live one; read-only. */
export function listReleasesCommand(site: Site): Script {
  const p = site.paths;
  return sh`echo "current=$(basename "$(readlink ${p.current} 2>/dev/null)" 2>/dev/null)"
for d in ${p.releases}/*/; do [ -d "$d" ] || continue; id=$(basename "$d"); printf 'release=%s ' "$id"; cat ${`${p.state}/releases/`}"$id.json" 2>/dev/null | tr -d '\\n'; echo; done`;
}

export function parseReleases(output: string): ReleaseRecord[] {
  let current = '';
  const records: ReleaseRecord[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('current=')) current = line.slice(8).trim();
    else if (line.startsWith('release=')) {
      const [id = '', ...rest] = line.slice(8).split(' ');
      let rec: Partial<ReleaseRecord> = {};
      try {
        rec = rest.join(' ').trim() ? (JSON.parse(rest.join(' ')) as Partial<ReleaseRecord>) : {};
      } catch {
        rec = {};
      }
      // A release folder without a good record was interrupted or failed.
      const good = rec.status === 'live' || rec.status === 'good' || rec.status === 'previous';
      records.push({ ...rec, id, status: good ? 'good' : 'failed' });
    }
  }
  records.sort((a, b) => b.id.localeCompare(a.id));
  const live = records.find((r) => r.id === current);
  if (live) live.status = 'live';
  const previous = records.find((r) => r.status === 'good' && r.id < current);
  if (previous) previous.status = 'previous';
  return records;
}

export async function releasesCommand(kit: CoreKit, nodeArg: string | undefined, options: { json?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const nodes = expandNodes(nodeArg, project.site.config, project.site.configFile);
  const all: Record<string, ReleaseRecord[]> = {};
  for (const node of nodes) {
    const remote = await kit.connect(await kit.resolveNode(node, project));
    const { stdout } = await remote.exec(listReleasesCommand(project.site));
    all[node] = parseReleases(stdout);
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(nodes.length === 1 ? all[nodes[0]!] : all, null, 2)}\n`);
    return;
  }
  for (const node of nodes) {
    process.stdout.write(`${project.site.name} on ${node}:\n`);
    const rows = all[node]!;
    if (!rows.length) process.stdout.write('  no releases yet\n');
    for (const r of rows) {
      const when = r.time ? r.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '';
      process.stdout.write(
        `  ${r.id}  ${r.status.padEnd(8)}  ${when.padEnd(20)}  ${(r.deployer ?? '').padEnd(20)}  ${r.revision ?? ''}\n`,
      );
    }
  }
}

export async function unlockCommand(kit: CoreKit, nodeArg: string | undefined): Promise<void> {
  const project = await kit.loadProject();
  for (const node of expandNodes(nodeArg, project.site.config, project.site.configFile)) {
    const remote = await kit.connect(await kit.resolveNode(node, project));
    const { stdout } = await remote.exec(forceUnlockCommand(project.site.name));
    kit.log.info(stdout.trim() ? `${node}: removed the deploy lock of ${describeHolder(stdout)}` : `${node}: ${project.site.name} was not locked`);
  }
}
