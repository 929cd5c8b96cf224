import { type SetupContext, SetupPackages } from '../../engine/context.ts';
import { createHooks, interceptHooks } from '../../engine/hooks.ts';
import type { CoreKit } from '../kit.ts';
import { NODE_MARKER, SITES_DIR } from '../../lifecycle/probe.ts';
import type { RunnableTask } from '../../engine/runner.ts';
import { aptInstallCommand, missingPackagesCommand } from '../../shell/apt.ts';
import { type Script, sh } from '../../shell/sh.ts';
import { Stage } from '../../engine/tasks.ts';
import { expandNodes } from '../../remote/node.ts';
import { placementOf, soloTopology } from '../../engine/topology.ts';
import { commandTopology } from './ops.ts';

/** Packages core itself needs on every node (the daemons come with the node plugins that use them). */
export const CORE_PACKAGES = ['rsync', 'curl', 'ca-certificates', 'locales', 'sudo', 'procps', 'util-linux'];

/** Folders and locale every node needs; prints what it changed. */
export function nodeBaseCommand(): Script {
  return sh`for d in /etc/kraftwerk ${SITES_DIR} /var/log/kraftwerk /run/kraftwerk; do [ -d "$d" ] || { install -d -m 0755 "$d"; echo "created $d"; }; done
# /run is a tmpfs: recreate /run/kraftwerk at every boot.
if [ -d /etc/tmpfiles.d ] && [ ! -f /etc/tmpfiles.d/kraftwerk.conf ]; then echo 'd /run/kraftwerk 0755 root root -' > /etc/tmpfiles.d/kraftwerk.conf; echo "created /etc/tmpfiles.d/kraftwerk.conf"; fi
if ! locale -a 2>/dev/null | grep -qi '^en_US.utf-\\?8$'; then
  if [ -f /etc/locale.gen ]; then sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen; grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >> /etc/locale.gen; locale-gen >/dev/null && echo "generated locale en_US.UTF-8"; fi
fi
true`;
}

export async function setupNodeCommand(kit: CoreKit, nodeArg: string | undefined): Promise<void> {
  const project = await kit.maybeProject();
  const { plugins, site } = await kit.nodeWide(project);
  const nodes = expandNodes(nodeArg, project?.site.config, project?.site.configFile);
  // A group split by role: each node gets what its roles need (a db node no web server, a web node no database).
  const topology = project ? await commandTopology(kit, project, nodes) : undefined;
  const hooks = createHooks();
  interceptHooks(hooks, undefined, placementOf(plugins));
  for (const p of plugins) p.apply?.(hooks, site);

  for (const node of nodes) {
    const ctx: SetupContext = {
      site,
      node,
      remote: undefined as never,
      options: kit.options(),
      log: kit.log,
      state: new Map(),
      changes: [],
      topology: topology?.get(node) ?? soloTopology(node),
    };

    const packages = new SetupPackages();
    packages.add(...CORE_PACKAGES);
    if (project) packages.add(...project.site.config.apt);
    const list = await (async () => {
      const { TaskList } = await import('../../engine/tasks.ts');
      const tasks = new TaskList<SetupContext>('setupNode');
      await hooks.setupNode.promise(ctx, tasks, packages);
      return tasks;
    })();
    const coreTasks: RunnableTask<SetupContext>[] = [
      {
        title: `connect to ${node}`,
        stage: -1000,
        run: async (c, task) => {
          const target = await kit.resolveNode(node, project);
          c.remote = await kit.connect(target);
          task.title(`connect to ${node} (${target.user}@${target.host})`);
        },
      },
      {
        title: 'Debian packages',
        stage: Stage.PREPARE - 100,
        run: async (c, task) => {
          const wanted = packages.names;
          const { stdout } = await c.remote.exec(missingPackagesCommand(wanted));
          const missing = stdout.split('\n').map((s) => s.trim()).filter(Boolean);
          if (!missing.length && !c.remote.dryRun) return task.title(`Debian packages (${wanted.length} present, unchanged)`);
          const install = c.remote.dryRun ? wanted : missing;
          task.title(`Debian packages: installing ${install.length}`);
          await c.remote.exec(aptInstallCommand(install), {
            onStdout: (chunk) => {
              const line = chunk.trim().split('\n').pop();
              if (line) task.output(line);
            },
          });
          c.changes.push(`installed ${install.join(' ')}`);
          task.title(`Debian packages (installed ${install.length})`);
        },
      },
      {
        title: 'Kraftwerk folders and locale',
        stage: Stage.PREPARE - 50,
        run: async (c, task) => {
          const { stdout } = await c.remote.exec(nodeBaseCommand());
          const made = stdout.split('\n').filter(Boolean);
          c.changes.push(...made);
          task.title(made.length ? `Kraftwerk folders and locale (${made.length} changes)` : 'Kraftwerk folders and locale (unchanged)');
        },
      },
      {
        title: 'mark node as set up',
        stage: Stage.VERIFY,
        run: async (c, task) => {
          const changed = await c.remote.syncFiles([
            { path: NODE_MARKER, content: `${JSON.stringify({ kraftwerk: 1, packages: packages.names.sort() }, null, 2)}\n`, mode: 0o644 },
          ]);
          if (changed.length) c.changes.push(`wrote ${NODE_MARKER}`);
          task.title(changed.length ? `mark node as set up (${NODE_MARKER})` : 'node marker (unchanged)');
        },
      },
    ];
    const all = [...coreTasks, ...list.sorted()].sort((a, b) => (a.stage ?? 0) - (b.stage ?? 0));
    await kit.runTasks([{ title: `setup-node ${node}`, tasks: all, node }], ctx);
    if (!kit.options().dryRun) {
      kit.log.info(ctx.changes.length ? `${node}: set up (${ctx.changes.length} changes).` : `${node}: already set up, nothing changed.`);
    }
  }
}
