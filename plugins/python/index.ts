/**
 * python: the site's virtualenv and its per-site Debian packages (install phase).
 *
 * A venv lives in /srv/<site>/venvs/<hash>, keyed by the requirements, the
 * Python version and the wheelhouse, so an unchanged project reuses it and a
 * deploy with no change costs one quick command here. Venvs see Debian's
 * packages (--system-site-packages): numpy, lxml, psycopg2 or Django from apt
 * need no compiler and no package index.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { aptEnsureCommand, definePlugin, KraftwerkError, Stage, type Hooks, type Site } from '../../core/index.ts';
import { hasRequirements, readVenvInputs, venvCommand, venvHash, WHEELHOUSE } from './venv.ts';

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
  description: 'virtualenv per requirements hash, pip install (wheelhouse aware), per-site apt packages',
  apply(hooks: Hooks, site: Site) {
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, _tasks, packages) => {
      packages.add(PLUGIN_NAME, ...PYTHON_PACKAGES);
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
          const inputs = readVenvInputs(site.sourceDir, site.config.requirements, pythonVersion);
          const hash = venvHash(inputs);
          const venv = `${site.paths.venvs}/${hash}`;
          const hasWheels = inputs.wheelhouse.length > 0 || existsSync(path.join(site.sourceDir, WHEELHOUSE));
          const { stdout } = await ctx.remote.exec(
            venvCommand({
              venv,
              requirementsPath: path.posix.join(ctx.release.path, site.config.requirements.split(path.sep).join('/')),
              wheelhousePath: hasWheels ? `${ctx.release.path}/${WHEELHOUSE}` : undefined,
              noRequirements: !hasRequirements(inputs.requirements),
              upgrade: ctx.deploy.upgradePackages,
            }),
            {
              onStdout: (chunk) => {
                const line = lastLine(chunk);
                if (line) task.output(line);
              },
            },
          );
          ctx.release.venv = venv;
          const how = stdout.includes('kraftwerk: venv reused')
            ? 'reused'
            : ctx.deploy.upgradePackages
              ? 'packages upgraded'
              : 'built';
          task.title(`virtualenv venvs/${hash} (${how})`);
        },
      });
    });
  },
});
