/**
 * The site's data: `dump`, `load`, `backup`, `backups` and
 * `backup --download`. A dump is a folder /srv/<site>/backups/<id>/ filled by
 * every plugin's `dump` tap (see core/dumps.ts); `load` hands such a folder to
 * every plugin's `load` tap, after taking a safety dump, then reloads the site.
 */
import os from 'node:os';
import path from 'node:path';
import { type DumpContext, type NodeContext, type ReloadContext, RemoteFileSet } from '../../engine/context.ts';
import {
  checkDumpId,
  dumpDir,
  type DumpInfo,
  type DumpKind,
  type DumpManifest,
  finishDumpCommand,
  listDumpsCommand,
  newDumpId,
  parseDumpList,
  prepareDumpDirCommand,
  rotateBackupsCommand,
} from '../../lifecycle/dumps.ts';
import { KraftwerkError, PluginError } from '../../errors.ts';
import { collectTasks, type Hooks } from '../../engine/hooks.ts';
import type { CoreKit } from '../kit.ts';
import type { DeployLock } from '../../lifecycle/lock.ts';
import type { Project } from '../../engine/plugin.ts';
import { firstAnswer } from '../../engine/registry.ts';
import { runInline, type RunnableTask, type TaskGroup } from '../../engine/runner.ts';
import { sh } from '../../shell/sh.ts';
import { Stage, type TaskHandle } from '../../engine/tasks.ts';
import type { Remote } from '../../remote/remote.ts';
import type { Topology } from '../../engine/topology.ts';
import { applyPlugins } from './deploy.ts';
import { commandTopology, connect, connectTask, confirmOrStop, groupDeclaresRoles, nodeContext, nodesOf, requireDeployed, runReloadInline, singleNode, takeSiteLock } from './ops.ts';
import { formatSize } from './status.ts';

const who = (): string => `${os.userInfo().username}@${os.hostname()}`;

/**
 * The tasks of one dump on one node: scratch folder, every plugin's dump
 * tasks, manifest and rename, and for backups the rotation. `ctx.id` and
 * `ctx.dir` (the scratch folder) are fixed before the tasks run.
 */
export async function dumpTasks(
  hooks: Hooks,
  project: Project,
  ctx: DumpContext,
  kind: DumpKind,
): Promise<RunnableTask<DumpContext>[]> {
  const { site } = project;
  const list = await collectTasks(hooks.dump, 'dump', ctx);
  const plugins = [...new Set(list.sorted().map((t) => t.plugin))];
  const final = dumpDir(site, ctx.id);
  const manifest: DumpManifest = { kind, site: site.name, plugins, by: who() };
  const keep = firstAnswer(project.plugins, 'keepBackups', site);
  return [
    {
      title: 'dump folder',
      stage: Stage.PREPARE,
      run: async (c, task) => {
        await c.remote.exec(prepareDumpDirCommand(c.dir));
        task.title(`dump folder ${final}`);
      },
    },
    ...list.sorted(),
    {
      title: 'finish dump',
      stage: Stage.VERIFY,
      run: async (c, task) => {
        await c.remote.exec(finishDumpCommand(c.dir, final, manifest));
        const { stdout } = await c.remote.exec(sh`du -sk ${final} | cut -f1`, { check: false });
        task.title(`dump ${c.id} (${plugins.join(', ') || 'no service has data'}; ${formatSize(Number(stdout.trim()) || 0)})`);
      },
    },
    ...(kind === 'backup' && keep
      ? [
          {
            title: `rotate backups (keep ${keep})`,
            stage: Stage.VERIFY + 10,
            run: async (c: DumpContext, task: { title(t: string): void }) => {
              const { stdout } = await c.remote.exec(rotateBackupsCommand(site, keep));
              const removed = stdout.split('\n').filter((l) => l.startsWith('removed '));
              task.title(`rotate backups (keep ${keep}${removed.length ? `, removed ${removed.length}` : ''})`);
            },
          } satisfies RunnableTask<DumpContext>,
        ]
      : []),
  ];
}

/** `topology`: the node's place in its group (commandTopology): a plugin dumps only on the nodes of its roles. */
export function dumpContext(kit: CoreKit, project: Project, node: string, id: string, remote?: Remote, topology?: Topology): DumpContext {
  return { ...nodeContext(kit, project.site, node, remote, topology), id, dir: `${project.site.paths.backups}/.partial-${id}` };
}

/** `kraftwerk dump [node]` and `kraftwerk backup [node]`: one dump on every node of the group. Returns the id. */
export async function dumpCommand(kit: CoreKit, nodeArg: string | undefined, kind: 'dump' | 'backup'): Promise<string> {
  const project = await kit.loadProject();
  const { hooks } = applyPlugins(project);
  const nodes = nodesOf(project, nodeArg);
  const topologies = await commandTopology(kit, project, nodes);
  const id = newDumpId();
  const groups: TaskGroup<DumpContext>[] = [];
  for (const node of nodes) {
    // In a group split by roles each node dumps its own part (the database on its node), under one id.
    const ctx = dumpContext(kit, project, node, id, undefined, topologies.get(node));
    const tasks = await dumpTasks(hooks, project, ctx, kind);
    groups.push({
      title: nodes.length > 1 ? node : `${kind} ${project.site.name} on ${node}`,
      tasks: [connectTask<DumpContext>(kit, project), deployedCheck<DumpContext>(project), ...tasks],
      ctx,
      node,
    });
  }
  await kit.runTasks(nodes.length > 1 ? [{ title: `${kind} on ${nodes.length} nodes`, tasks: groups, concurrent: true }] : groups, groups[0]!.ctx!);
  if (!kit.options().dryRun) {
    kit.log.info(`${kind === 'backup' ? 'Backup' : 'Dump'} ${id} of ${project.site.name} on ${nodes.join(', ')} in ${dumpDir(project.site, id)}`);
  }
  return id;
}

function deployedCheck<C extends NodeContext>(project: Project): RunnableTask<C> {
  return {
    title: 'check site',
    stage: Stage.PREPARE - 100,
    run: (c) => requireDeployed(c.remote, project.site, c.node),
  };
}

export async function listDumps(remote: Remote, project: Project): Promise<DumpInfo[]> {
  const { stdout } = await remote.exec(listDumpsCommand(project.site));
  return parseDumpList(stdout);
}

export function formatDumpList(dumps: readonly DumpInfo[]): string {
  if (!dumps.length) return '  no dumps or backups';
  const lines = dumps.map(
    (d) => `  ${d.id.padEnd(24)} ${d.kind.padEnd(8)} ${formatSize(d.sizeKb).padStart(9)}  ${d.plugins.join(', ') || '-'}`,
  );
  return [`  ${'ID'.padEnd(24)} ${'KIND'.padEnd(8)} ${'SIZE'.padStart(9)}  CONTENTS`, ...lines].join('\n');
}

/** `kraftwerk backups [node] [--json]`. */
export async function backupsCommand(kit: CoreKit, nodeArg: string | undefined, options: { json?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const nodes = nodesOf(project, nodeArg);
  const all: { node: string; dumps: DumpInfo[] }[] = [];
  for (const node of nodes) {
    const remote = await connect(kit, project, node);
    const dumps = await listDumps(remote, project);
    all.push({ node, dumps });
    if (!options.json) {
      process.stdout.write(`${all.length > 1 ? '\n' : ''}${project.site.name} on ${node} (${project.site.paths.backups}):\n${formatDumpList(dumps)}\n`);
    }
  }
  if (options.json) process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
}

/** Newest dump of the node when no id is given; a clear error for an id that is not there. */
async function pickDump(remote: Remote, project: Project, node: string, id: string | undefined): Promise<DumpInfo> {
  const dumps = await listDumps(remote, project);
  if (remote.dryRun) return { id: id ?? newDumpId(), kind: 'unknown', sizeKb: 0, plugins: [] };
  const found = id ? dumps.find((d) => d.id === checkDumpId(id)) : dumps.at(-1);
  if (!found) {
    throw new KraftwerkError(id ? `no dump ${id} of ${project.site.name} on ${node}` : `no dumps of ${project.site.name} on ${node}`, {
      hint: dumps.length ? `There are: ${dumps.map((d) => d.id).join(', ')}` : `Take one with: kraftwerk backup ${node}`,
    });
  }
  return found;
}

/** `kraftwerk backup --download [id] [--to DIR]`: copy a dump to this machine (the newest when no id). */
export async function downloadCommand(kit: CoreKit, nodeArg: string | undefined, id: string | undefined, options: { to?: string }): Promise<string> {
  const project = await kit.loadProject();
  const node = singleNode(project, nodeArg, 'backup --download');
  const remote = await connect(kit, project, node);
  const dump = await pickDump(remote, project, node, id);
  const local = path.resolve(options.to ?? path.join(os.homedir(), 'kraftwerk-backups', project.site.name, node, dump.id));
  await kit.runTasks(
    [
      {
        title: `download ${dump.id} from ${node}`,
        run: async (_c: unknown, task) => {
          const stats = await remote.rsync({ kind: 'pull', remoteDir: dumpDir(project.site, dump.id), localDir: local }, { onLine: (l) => task.output(l) });
          if (stats) task.title(`download ${dump.id} from ${node} (${formatSize(Math.round(stats.bytesReceived / 1024))} received)`);
        },
      },
    ],
    undefined,
  );
  if (!kit.options().dryRun) kit.log.info(`Downloaded ${dump.id} to ${local}`);
  return local;
}

/**
 * `kraftwerk backup verify [node] [id]`: prove a dump restores (the newest when
 * no id). Every plugin whose data the dump holds restores its share into
 * scratch space on the node that no site can reach (a scratch database, a
 * scratch folder), checks it and removes it again, also on failure. A bad
 * dump is an error naming it and what failed (exit 1).
 */
export async function verifyBackupCommand(kit: CoreKit, nodeArg: string | undefined, id: string | undefined): Promise<void> {
  const project = await kit.loadProject();
  const nodes = nodesOf(project, nodeArg);
  // A group split by roles: each node verifies its part of the backup (the database on its node).
  const each = nodes.length > 1 && groupDeclaresRoles(project, nodes) ? nodes : [singleNode(project, nodeArg, 'backup verify')];
  if (id) checkDumpId(id);
  const { hooks } = applyPlugins(project);
  const topologies = await commandTopology(kit, project, each);
  for (const node of each) await verifyOnNode(kit, project, hooks, node, id, topologies.get(node));
}

async function verifyOnNode(kit: CoreKit, project: Project, hooks: Hooks, node: string, id: string | undefined, topology?: Topology): Promise<void> {
  const { site } = project;
  const remote = await connect(kit, project, node);
  const dump = await pickDump(remote, project, node, id);
  const ctx: DumpContext = { ...nodeContext(kit, site, node, remote, topology), id: dump.id, dir: dumpDir(site, dump.id) };
  const all = (await collectTasks(hooks.verify, 'verify', ctx)).sorted();
  // A plugin checks only what this dump holds: a dump from before a service was on has none of its data.
  const checks = all.filter((t) => dump.plugins.includes(t.plugin) || remote.dryRun);
  const unchecked = dump.plugins.filter((p) => !all.some((t) => t.plugin === p));
  const name = `backup ${dump.id} of ${site.name} on ${node}`;
  if (!checks.length) {
    kit.log.info(`${name}: nothing to verify (${dump.plugins.length ? `no check for ${dump.plugins.join(', ')}` : 'it holds no data'}).`);
    return;
  }
  try {
    await kit.runTasks([{ title: `verify ${name}`, tasks: [deployedCheck<DumpContext>(project), ...checks], ctx, node }], ctx);
  } catch (err) {
    const cause = err instanceof PluginError && err.cause instanceof Error ? err.cause : err;
    throw new KraftwerkError(`${name} is bad: ${cause instanceof Error ? cause.message : String(cause)}`, {
      hint: 'Keep the older backups until a newer one verifies; take a new one with: kraftwerk backup',
    });
  }
  if (!kit.options().dryRun) {
    kit.log.info(`${name} verified: ${checks.map((t) => t.plugin).join(', ')} restored into scratch space and removed again${unchecked.length ? ` (no check for ${unchecked.join(', ')})` : ''}.`);
  }
}

/** Tasks that load dump `id` (already in the node's backups folder) and reload the site. */
export async function loadTasks(
  kit: CoreKit,
  hooks: Hooks,
  project: Project,
  node: string,
  id: string,
  options: { backupFirst: boolean },
  /** The node's place in its group: each plugin loads only on the nodes of its roles. */
  topology?: Topology,
): Promise<{ tasks: RunnableTask<DumpContext>[]; ctx: DumpContext; cleanup: () => Promise<void> }> {
  const { site } = project;
  const ctx: DumpContext = { ...nodeContext(kit, site, node, undefined, topology), id, dir: dumpDir(site, id) };
  const loadList = (await collectTasks(hooks.load, 'load', ctx)).sorted();
  let lock: DeployLock | undefined;

  const safetyId = newDumpId(new Date(), 'pre-load');
  const safetyCtx = dumpContext(kit, project, node, safetyId, undefined, topology);
  const safety = options.backupFirst ? await dumpTasks(hooks, project, safetyCtx, 'pre-load') : [];

  const reloadCtx: ReloadContext = { ...nodeContext(kit, site, node, undefined, topology), env: {}, previousEnv: {}, files: new RemoteFileSet() };
  const reloadList = (await collectTasks(hooks.reload, 'reload', reloadCtx)).sorted();

  const tasks: RunnableTask<DumpContext>[] = [
    connectTask<DumpContext>(kit, project),
    deployedCheck<DumpContext>(project),
    {
      title: `check dump ${id}`,
      stage: Stage.PREPARE - 50,
      run: async (c, task) => {
        lock = await takeSiteLock(c, task, `load ${id}`);
        const dump = await pickDump(c.remote, project, node, id);
        task.title(`dump ${id} (${dump.kind}, ${dump.plugins.join(', ') || 'empty'})`);
      },
    },
    ...(options.backupFirst
      ? [
          {
            title: `safety dump ${safetyId}`,
            stage: Stage.PREPARE - 10,
            run: async (c: DumpContext, task: TaskHandle) => {
              safetyCtx.remote = c.remote;
              await runInline(safety, safetyCtx, task);
            },
          } satisfies RunnableTask<DumpContext>,
        ]
      : []),
    ...loadList,
    {
      title: 'reload site',
      stage: Stage.RELOAD,
      run: async (c, task) => {
        reloadCtx.remote = c.remote;
        const { stdout } = await c.remote.exec(sh`cat ${site.paths.env} 2>/dev/null; true`);
        const { parseEnvFile } = await import('../../shell/env-file.ts');
        reloadCtx.env = parseEnvFile(stdout);
        (reloadCtx as { previousEnv: Record<string, string> }).previousEnv = reloadCtx.env;
        const plugins = await runReloadInline(reloadList, reloadCtx, task);
        task.title(plugins.length ? `reload site (${plugins.join(', ')})` : 'reload site (nothing to reload)');
      },
    },
  ];
  return { tasks, ctx, cleanup: async () => lock?.release().catch(() => undefined) };
}

/**
 * The nodes `load` goes to: one node, as ever; a group only when its nodes
 * declare roles. Then each node holds its own part of a dump of the group (the
 * database on the db node, uploads on the web node: `dump <group>` dumps on
 * every node with one id), and each loads its part.
 */
function loadNodes(project: Project, nodeArg: string | undefined): string[] {
  const nodes = nodesOf(project, nodeArg);
  return nodes.length > 1 && groupDeclaresRoles(project, nodes) ? nodes : [singleNode(project, nodeArg, 'load')];
}

/** `kraftwerk load [node|group] <id> [--no-backup] [--yes]`. */
export async function loadCommand(kit: CoreKit, nodeArg: string | undefined, id: string, options: { backup?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const nodes = loadNodes(project, nodeArg);
  const where = nodes.join(', ');
  checkDumpId(id);
  const backupFirst = options.backup !== false;
  await confirmOrStop(
    kit,
    `Replace the data of ${project.site.name} on ${where} (database, uploads, …) with dump ${id}?${backupFirst ? ' A dump of the current data is taken first.' : ' No dump of the current data is taken (--no-backup).'}`,
  );
  const { hooks } = applyPlugins(project);
  const topologies = await commandTopology(kit, project, nodes);
  const loads = await Promise.all(nodes.map((node) => loadTasks(kit, hooks, project, node, id, { backupFirst }, topologies.get(node))));
  try {
    // One node after the other, in the group's order: a failure stops before the next node changes.
    const groups = loads.map(({ tasks, ctx }, i) => ({ title: `load ${id} into ${project.site.name} on ${nodes[i]}`, tasks, ctx, node: nodes[i]! }));
    await kit.runTasks(groups, groups[0]!.ctx);
  } finally {
    await Promise.all(loads.map((l) => l.cleanup()));
  }
  if (!kit.options().dryRun) {
    kit.log.info(`Loaded ${id} into ${project.site.name} on ${where}.${backupFirst ? ' The data it replaced is in the dump taken just before (kraftwerk backups).' : ''}`);
  }
}
