/**
 * Previews: `deploy --preview NAME [--with-data]`, `previews [node]` and
 * `destroy --preview NAME`. A preview is the project deployed as another site
 * (core/config/preview.ts); these build its Project and hand it to the one
 * deploy and the one destroy there are. What only a preview does is a small
 * plugin applied after the project's own: the marker that says on the node
 * whose preview a site is (core/lifecycle/preview.ts), the refusal to take over
 * a site that is not one, and with --with-data the main site's data loaded
 * into the preview before its release commands (migrations) run.
 */
import type { DeployContext, DumpContext } from '../../engine/context.ts';
import { dumpDir, newDumpId } from '../../lifecycle/dumps.ts';
import { UsageError } from '../../errors.ts';
import { collectTasks, type Hooks } from '../../engine/hooks.ts';
import type { CoreKit } from '../kit.ts';
import { definePlugin, type Plugin, type Project } from '../../engine/plugin.ts';
import { runInline, type RunnableTask } from '../../engine/runner.ts';
import { previewNames, previewSite } from '../../config/preview.ts';
import { siteNameReservations } from '../../config/settings.ts';
import { formatAge, listPreviewsCommand, parsePreviewList, previewConflict, previewMarkerContent, previewMarkerPath, type PreviewOnNode } from '../../lifecycle/preview.ts';
import { sh } from '../../shell/sh.ts';
import { Stage, type TaskHandle } from '../../engine/tasks.ts';
import { applyPlugins, type DeployCommandOptions, deployCommand, siteUrlOf } from './deploy.ts';
import { dumpContext, dumpTasks } from './dump.ts';
import { connect, nodeContext, nodesOf, requireDeployed } from './ops.ts';

const PLUGIN_NAME = 'preview';

/** Stage of the data copy: after the databases and folders are provisioned and the files written, before the snapshot and release commands. */
const COPY_DATA_STAGE = Stage.AFTER_FILES + 30;

/**
 * The preview's part of its deploy and destroy. `main` is the project as
 * kraftwerk.yaml has it (the site whose data --with-data copies).
 */
function previewPlugin(kit: CoreKit, main: Project, options: { withData: boolean }): Plugin {
  return definePlugin({
    name: PLUGIN_NAME,
    description: `preview of ${main.site.name}: its marker on the node${options.withData ? `, a copy of ${main.site.name}'s data` : ''}`,
    apply(hooks, site) {
      const marker = previewMarkerPath(site.name);
      const conflictCheck = (existing: string | undefined, exists: boolean) => {
        const conflict = previewConflict(site, existing, exists);
        if (conflict) {
          throw new UsageError(`--preview ${site.preview!.name}: ${conflict}`, {
            hint: 'Choose another preview name. Nothing was changed.',
          });
        }
      };

      hooks.preSync.tap(PLUGIN_NAME, (ctx, tasks) => {
        ctx.probe.read(marker).exists(site.paths.root);
        tasks.add({
          title: `check preview ${site.name}`,
          // After the probe (inspect node), before anything changes.
          stage: Stage.PREPARE + 10,
          run: async (c, task) => {
            conflictCheck(c.facts.files.get(marker), c.facts.exists.has(site.paths.root));
            if (options.withData) await requireDeployed(c.remote, main.site, c.node);
            task.title(`preview ${site.preview!.name} of ${main.site.name}${c.facts.files.has(marker) ? '' : ' (new)'}`);
          },
        });
      });

      hooks.environment.tap(PLUGIN_NAME, (_ctx, env) => {
        // The app can tell it is a preview (and e.g. send no mail to the real users whose data it may hold).
        env.set('KRAFTWERK_PREVIEW', site.preview!.name);
      });

      hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
        tasks.add({
          title: 'preview marker',
          stage: Stage.PREPARE,
          run: (c) => {
            // root:root 0644 beside the site's registration: no site can write it.
            c.files.add({ path: marker, content: previewMarkerContent(site, c.facts.files.get(marker)), mode: 0o644 });
          },
        });
        if (options.withData) {
          tasks.add({
            title: `copy the data of ${main.site.name}`,
            stage: COPY_DATA_STAGE,
            run: (c, task) => copyMainData(kit, main, hooks, c, task),
          });
        }
      });

      hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
        tasks.add({
          title: `check preview ${site.name}`,
          // Before every plugin's removal: a site that is not this project's preview is left alone.
          stage: Stage.PREPARE - 100,
          run: async (c) => {
            const { stdout } = await c.remote.exec(
              sh`if [ -f ${marker} ]; then cat ${marker}; else echo -; fi; if [ -d ${site.paths.root} ]; then echo exists; fi`,
            );
            if (c.remote.dryRun) return;
            const [first = '-', ...rest] = stdout.trim().split('\n');
            conflictCheck(first === '-' ? undefined : first, rest.includes('exists'));
          },
        });
      });
    },
  });
}

/**
 * --with-data: a dump of the main site (the `sync` dump every plugin's dump tap
 * fills, in the main site's backups), loaded through the preview's own load
 * taps, so each plugin restores it as the preview's (its database, its user's
 * uploads); then removed, it existed only to be copied.
 */
async function copyMainData(kit: CoreKit, main: Project, hooks: Hooks, ctx: DeployContext, task: TaskHandle): Promise<void> {
  const id = newDumpId(new Date(), 'preview');
  const dumpCtx = dumpContext(kit, main, ctx.node, id, ctx.remote);
  const dump = await dumpTasks(applyPlugins(main).hooks, main, dumpCtx, 'sync');
  const loadCtx: DumpContext = { ...nodeContext(kit, ctx.site, ctx.node, ctx.remote), id, dir: dumpDir(main.site, id) };
  const load = (await collectTasks(hooks.load, 'load', loadCtx)).sorted() as RunnableTask<DumpContext>[];
  try {
    await runInline(dump, dumpCtx, task);
    const loaded = await runInline(load, loadCtx, task);
    task.title(`copy the data of ${main.site.name} (${[...new Set(loaded.map((t) => t.plugin))].join(', ') || 'no service has data'})`);
  } finally {
    await ctx.remote.exec(sh`rm -rf -- ${dumpDir(main.site, id)} ${dumpCtx.dir}`, { check: false });
  }
}

/** The preview NAME of the project as a Project of its own (throws a usage error for a bad NAME). */
export async function previewProject(kit: CoreKit, name: string, options: { withData?: boolean } = {}): Promise<Project> {
  const main = await kit.loadProject();
  const names = previewNames(main.site, name, siteNameReservations(main.plugins));
  return { site: previewSite(main.site, names), plugins: [...main.plugins, previewPlugin(kit, main, { withData: options.withData ?? false })] };
}

/** `kraftwerk deploy [node] --preview NAME [--with-data]`. */
export async function deployPreviewCommand(kit: CoreKit, nodeArg: string | undefined, options: DeployCommandOptions & { preview?: string; withData?: boolean }): Promise<void> {
  if (options.preview === undefined) {
    throw new UsageError('--with-data works with --preview NAME only', { hint: 'To copy data between nodes, use kraftwerk sync-services <from> <to>.' });
  }
  const project = await previewProject(kit, options.preview, { withData: options.withData });
  await deployCommand(kit, nodeArg, options, project);
}

/** `kraftwerk destroy [node] --preview NAME`: the destroy of the preview's site, which refuses a site that is not this project's preview. */
export async function destroyPreviewCommand(kit: CoreKit, nodeArg: string | undefined, name: string, options: { keepData?: boolean }, removed: string): Promise<void> {
  if (options.keepData) {
    // Kept data without the site's registration (and so its marker) would be a site no command could tell as a preview.
    throw new UsageError('--keep-data does not go with --preview: destroying a preview removes all of it', {
      hint: `Run it without --keep-data (the main site's data is never touched by it), or keep the preview ${name} for now. Nothing was changed.`,
    });
  }
  const { destroyCommand } = await import('./destroy.ts');
  await destroyCommand(kit, nodeArg, options, removed, await previewProject(kit, name));
}

/** A preview as `kraftwerk previews --json` gives it. */
interface ListedPreview extends PreviewOnNode {
  url: string;
  age: string;
}

/** `kraftwerk previews [node] [--json]`: the previews of this project on each node, from their markers there. */
export async function previewsCommand(kit: CoreKit, nodeArg: string | undefined, options: { json?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const { site } = project;
  const nodes = nodesOf(project, nodeArg);
  const all: { node: string; previews: ListedPreview[] }[] = [];
  for (const node of nodes) {
    const remote = await connect(kit, project, node);
    const { stdout } = await remote.exec(listPreviewsCommand());
    const previews = parsePreviewList(stdout, site.name).map((p) => {
      const preview = previewSite(site, { name: p.name, siteName: p.site, domain: p.domain });
      return { ...p, url: siteUrlOf({ site: preview, plugins: project.plugins }), age: formatAge(p.created) };
    });
    all.push({ node, previews });
    if (options.json || remote.dryRun) continue;
    const lines = previews.map((p) => `  ${p.name.padEnd(20)} ${p.age.padStart(5)}  ${(p.live ?? 'not live').padEnd(16)}  ${p.url}`);
    process.stdout.write(
      `${all.length > 1 ? '\n' : ''}previews of ${site.name} on ${node}:\n${
        lines.length ? [`  ${'NAME'.padEnd(20)} ${'AGE'.padStart(5)}  ${'LIVE RELEASE'.padEnd(16)}  URL`, ...lines].join('\n') : '  none'
      }\n`,
    );
  }
  if (options.json) process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
}
