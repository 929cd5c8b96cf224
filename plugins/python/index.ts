/**
 * python: the site's virtualenv and its per-site Debian packages (install phase).
 *
 * A venv lives in /srv/<site>/venvs/<hash>, keyed by the requirements, the
 * Python version and the wheelhouse, so an unchanged project reuses it and a
 * deploy with no change costs one quick command here. pip runs as the site's
 * build user, never as root, and the venv is read-only to the site (see
 * buildUser); `--upgrade-packages` builds a new venv beside the live one, and
 * venvs that no kept release uses are pruned after the release record. Venvs see Debian's
 * packages (--system-site-packages): numpy, lxml, psycopg2 or Django from apt
 * need no compiler and no package index.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { aptEnsureCommand, definePlugin, deployTimeouts, KraftwerkError, lifecycleHooks, settingsOf, siteWebGroup, Stage, type Hooks, type Site } from '../../core/index.ts';
import { type Dependencies, dependencyNames, hasDependencies, PYTHON_SETTINGS, readDependencies } from './requirements.ts';

/** After core's release record (Stage.VERIFY + 100), which prunes the release folders first. */
const PRUNE_STAGE = Stage.VERIFY + 200;
import {
  buildUser,
  COMPLETE_MARKER,
  parseVenvResult,
  pruneVenvsCommand,
  readVenvInputs,
  reusableVenv,
  removeBuildUserCommand,
  venvCommand,
  venvHash,
  WHEELHOUSE,
} from './venv.ts';

const PLUGIN_NAME = 'python';

/** Debian packages every node gets: venvs, headers and a compiler for sdists, and the binary packages the original installed. */
export const PYTHON_PACKAGES = [
  'python3',
  'python3-venv',
  'python3-dev',
  'build-essential',
  'python3-numpy',
  'python3-lxml',
  'libmagickwand-dev',
];

function lastLine(chunk: string): string | undefined {
  return chunk.trim().split('\n').pop()?.trim() || undefined;
}

export default definePlugin({
  name: PLUGIN_NAME,
  // Wherever the site's code runs.
  runsOn: ['web', 'worker', 'cron'],
  description: 'virtualenv per requirements hash (requirements.txt or pyproject.toml), pip install (wheelhouse aware), per-site apt packages',
  settings: PYTHON_SETTINGS,
  init: {
    // The service plugins' guesses (psycopg2 → postgres) read these names.
    dependencies: (project) => dependencyNames(project.read),
    examples: () => ({ requirements: 'requirements/production.txt' }),
  },
  apply(hooks: Hooks, site: Site) {
    let deps: Dependencies | undefined;
    const dependencies = () => (deps ??= readDependencies(site.sourceDir, settingsOf(site, PYTHON_SETTINGS).requirements, site.configFile));

    hooks.preSync.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'check dependencies',
        // With core's check of the project, before the node is touched: a missing file changes nothing there.
        stage: Stage.PREPARE - 100,
        run: (_c, task) => {
          const d = dependencies();
          task.title(d.kind === 'pyproject' ? `dependencies: ${d.specs.length} in ${d.file}` : `dependencies: ${d.file}`);
        },
      });
    });

    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, _tasks, packages) => {
      packages.add(...PYTHON_PACKAGES);
    });

    // A deploy changes nothing here while the venv it would run in and the site's apt packages are as they were:
    // the requirements (also in the project's files), the wheelhouse, the node's Python, and none of the packages missing.
    lifecycleHooks(hooks).fingerprint.tap(PLUGIN_NAME, (ctx, parts) => {
      parts.add('venv', venvHash(readVenvInputs(site.sourceDir, dependencies(), ctx.facts.pythonVersion ?? '')));
      parts.add('apt missing', site.config.apt.filter((p) => !ctx.facts.installed.has(p)).join(' '));
    });

    hooks.install.tap(PLUGIN_NAME, (ctx, tasks) => {
      // The probe at the start of the deploy says whether they are all there: then no command here.
      ctx.probe.installed(...site.config.apt);
      tasks.add({
        title: `apt packages: ${site.config.apt.join(' ')}`,
        stage: Stage.EARLY,
        skip: (c) =>
          !site.config.apt.length
            ? true
            : site.config.apt.every((p) => c.facts.installed.has(p))
              ? `apt packages (${site.config.apt.length} present, unchanged)`
              : false,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(aptEnsureCommand(site.config.apt), {
            onStdout: (chunk) => {
              const line = lastLine(chunk);
              if (line) task.output(line);
            },
          });
          task.title(
            stdout.includes('kraftwerk: apt unchanged')
              ? `apt packages (${site.config.apt.length} present, unchanged)`
              : `apt packages: installed ${site.config.apt.join(' ')}`,
          );
        },
      });

      // The complete venvs, from the probe: the usual deploy (its venv is there) runs no command for it.
      const complete = `${site.paths.venvs}/*/${COMPLETE_MARKER}`;
      ctx.probe.glob(complete);
      tasks.add({
        title: 'virtualenv',
        run: async (ctx, task) => {
          const pythonVersion = ctx.facts.pythonVersion;
          if (!pythonVersion) {
            if (ctx.remote.dryRun) {
              ctx.release.venv = `${site.paths.venvs}/<hash>`;
              return task.title('virtualenv (dry run: Python version unknown)');
            }
            throw new KraftwerkError(`python3 was not found on ${ctx.node}`, { hint: `Run: kraftwerk setup-node ${ctx.node}` });
          }
          const deps = dependencies();
          const inputs = readVenvInputs(site.sourceDir, deps, pythonVersion);
          const hash = venvHash(inputs);
          const hasWheels = inputs.wheelhouse.length > 0 || existsSync(path.join(site.sourceDir, WHEELHOUSE));
          const upgrade = ctx.deploy.upgradePackages;
          const listed = ctx.facts.globs.get(complete);
          const reuse = !upgrade && listed ? reusableVenv(site.paths.venvs, hash, listed, ctx.facts.liveRecord?.venv as string | undefined) : undefined;
          const build = async () => {
            const { stdout } = await ctx.remote.exec(
              venvCommand({
                venvs: site.paths.venvs,
                hash,
                liveLink: `${site.paths.current}/.venv`,
                upgradeStamp: upgrade ? ctx.release.id : undefined,
                user: buildUser(site.name),
                group: site.user,
                webGroup: siteWebGroup(site),
                install: !hasDependencies(deps)
                  ? undefined
                  : deps.kind === 'pyproject'
                    ? { specs: deps.specs }
                    : { requirementsPath: path.posix.join(ctx.release.path, deps.file) },
                wheelhousePath: hasWheels ? `${ctx.release.path}/${WHEELHOUSE}` : undefined,
              }),
              {
                onStdout: (chunk) => {
                  const line = lastLine(chunk);
                  if (line) task.output(line);
                },
                // A Ctrl-C, `timeouts.install` or a lost connection stops pip on the node too (the venv
                // it was building has no completion marker then, and is rebuilt by the next deploy).
                interruptible: true,
                timeoutMs: deployTimeouts(site.config).installMs,
              },
            );
            return parseVenvResult(stdout) ?? { name: upgrade ? `${hash}-u${ctx.release.id}` : hash, how: 'built' as const };
          };
          const result = reuse ? { name: reuse, how: 'reused' as const } : await build();
          ctx.release.venv = `${site.paths.venvs}/${result.name}`;
          const how = result.how === 'reused' ? 'reused' : upgrade ? 'built with upgraded packages' : 'built';
          task.title(`virtualenv venvs/${result.name} (${how})`);
        },
      });
    });

    hooks.restart.tap(PLUGIN_NAME, (ctx, tasks) => {
      const venvs = `${site.paths.venvs}/*`;
      ctx.probe.glob(venvs);
      tasks.add({
        title: 'prune venvs',
        stage: PRUNE_STAGE,
        // The usual case, one venv that this release uses: no command at all.
        skip: (c) => ((c.facts.globs.get(venvs) ?? []).every((v) => v === c.release.venv) ? 'venvs (nothing to prune)' : false),
        run: async (c, task) => {
          const { stdout } = await c.remote.exec(pruneVenvsCommand({ venvs: site.paths.venvs, releases: site.paths.releases, keep: c.release.venv }));
          const pruned = stdout.split('\n').filter((l) => l.startsWith('pruned venv '));
          task.title(pruned.length ? `prune venvs (removed ${pruned.map((l) => l.slice('pruned venv '.length)).join(', ')})` : 'prune venvs (all in use)');
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'remove build user',
        // Before core removes the site user: its group is the build user's primary group.
        stage: Stage.LATE,
        run: async (c, task) => {
          await c.remote.exec(removeBuildUserCommand(buildUser(site.name)));
          task.title(`removed build user ${buildUser(site.name)}`);
        },
      });
    });
  },
});
