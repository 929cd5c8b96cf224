import type { Topology } from '../engine/topology.ts';
import { type DeployContext, EnvironmentVars } from '../engine/context.ts';
import { KraftwerkError } from '../errors.ts';
import { Stage, type TaskSpec } from '../engine/tasks.ts';
import { parseEnvFile, renderEnvFile, siteNamesOf } from '../shell/env-file.ts';
import type { Hooks } from '../engine/hooks.ts';
import { releaseConfig, type Site } from '../config/site.ts';
import { type Script, quote, raw, sh } from '../shell/sh.ts';
import type { RemoteFile } from '../remote/remote.ts';
import type { SecretValues } from './site-secrets.ts';

/** Where a variable of the site's environment comes from, lowest precedence first. */
export type EnvSource = { kind: 'plugin'; plugin: string; secret: boolean } | { kind: 'environ' } | { kind: 'secret' } | { kind: 'local' };

export interface SiteEnvironment {
  vars: Record<string, string>;
  sources: Record<string, EnvSource>;
  /** The content of the release's env file (.kraftwerk/env) for `vars`: see mergeSiteVariables. */
  envFile: string;
}

/**
 * The one merge of a site's environment: the variables a release brings
 * itself (plugins' and `environ:`), then the site variables set with
 * `kraftwerk env set` (shared/env.local) over them. `envFile` renders them
 * with the site variables' names recorded, so a rollback can replace exactly
 * those (see withCurrentSiteVariables).
 */
export function mergeSiteVariables(generated: Record<string, string>, local: Record<string, string>): { vars: Record<string, string>; envFile: string } {
  const vars = { ...generated, ...local };
  return { vars, envFile: renderEnvFile(vars, Object.keys(local)) };
}

/**
 * The site's environment as a deploy writes it into the release (.kraftwerk/env and the envdir): the plugins'
 * variables (the `environment` hook), then `environ:` and `secrets:` from kraftwerk.yaml
 * (a name cannot be in both), then what `kraftwerk env set` stored (shared/env.local):
 * a value set on the node overrides the project's file, `secrets:` as `environ:`,
 * so one node can run with a value of its own. `previous` is the environment on
 * the server now, so plugins can keep generated secrets. `secrets` are the values
 * of `secrets:` (resolveSecrets); a caller that only wants `sources` passes `{}`:
 * the sources of `secrets:` come from the config's names.
 */
export async function computeSiteEnvironment(
  hooks: Hooks,
  site: Site,
  where: { readonly node: string; readonly topology: Topology },
  previous: Record<string, string>,
  local: Record<string, string>,
  secrets: SecretValues,
): Promise<SiteEnvironment> {
  const env = new EnvironmentVars();
  await hooks.environment.promise({ site, node: where.node, topology: where.topology, previous }, env);
  const generated: Record<string, string> = {};
  const sources: Record<string, EnvSource> = {};
  for (const [k, v] of env.vars) {
    generated[k] = v.value;
    sources[k] = { kind: 'plugin', plugin: v.plugin, secret: v.secret };
  }
  for (const [k, v] of Object.entries(site.config.environ)) {
    generated[k] = String(v);
    sources[k] = { kind: 'environ' };
  }
  for (const k of Object.keys(site.config.secrets)) sources[k] = { kind: 'secret' };
  for (const [k, v] of Object.entries(secrets)) generated[k] = v.value;
  for (const k of Object.keys(local)) sources[k] = { kind: 'local' };
  return { ...mergeSiteVariables(generated, local), sources };
}

/**
 * The tail of a command that reads the site's environment as it is on the node: the live
 * release's (shared/env) and what `env set` stored (shared/env.local). Its output is split by
 * splitSiteEnvOutput; what the command printed before it comes back as `head`.
 */
export function readSiteEnvScript(site: Site): Script {
  return sh`echo ---env---
cat ${site.paths.env} 2>/dev/null
echo ---envlocal---
cat ${site.paths.envLocal} 2>/dev/null
true`;
}

export function splitSiteEnvOutput(output: string): { head: string; env: Record<string, string>; local: Record<string, string> } {
  const [head = '', rest = ''] = output.split('---env---\n');
  const [env = '', local = ''] = rest.split('---envlocal---\n');
  return { head, env: parseEnvFile(env), local: parseEnvFile(local) };
}

/** What a rollback (or an undo) runs a release with: see withCurrentSiteVariables. */
export interface RestoredEnvironment {
  /** The release's files; its env, .kraftwerk/env and its envdir, with the site variables of now. */
  files: RemoteFile[];
  /** How the environment was made; undefined when the files hold no env file. */
  environment?: {
    /** Variables the release brought itself (plugins and its kraftwerk.yaml `environ:`). */
    generated: number;
    /** Variables taken from shared/env.local as it is now. */
    site: number;
  };
  /**
   * The release's envdir and the names it must hold: an `env set` while the
   * release was live wrote files there that its saved set does not know, so
   * the files of other names are removed (pruneEnvdirCommand).
   */
  envdir?: { dir: string; names: string[] };
}

/**
 * A release's saved configuration files, with its environment brought up to
 * date: the release's own generated values (plugins' variables such as
 * DATABASE_URL, and `environ:` of the kraftwerk.yaml it was deployed with),
 * and then shared/env.local as it is *now*, replacing the site variables the
 * release was deployed with. `kraftwerk env set/unset` changes only
 * env.local and the live release; re-merging here, at the one place where a
 * release's saved files come back (rollback, and undoing a failed deploy),
 * means a rotated or removed secret never returns with an older release, and
 * no other release needs rewriting when a secret changes. The values of
 * `secrets:` of now (`secrets`, run by this command) replace the release's own
 * the same way, so a secret rotated in the password manager does not come back
 * either; a name the config no longer has keeps the release's value.
 *
 * The envdir (releaseConfig's `environ`, one file per variable) follows the
 * same variables when the release had one; files of other names are removed
 * by pruneEnvdirCommand (the release is not running while it comes back).
 */
export function withCurrentSiteVariables(
  files: readonly RemoteFile[],
  releasePath: string,
  local: Record<string, string>,
  secrets: SecretValues = {},
): RestoredEnvironment {
  const own = releaseConfig(releasePath);
  const envFile = files.find((f) => f.path === own.env && !f.remove);
  if (!envFile) return { files: [...files] };
  const generated = parseEnvFile(envFile.content);
  for (const name of siteNamesOf(envFile.content)) delete generated[name];
  for (const name of Object.keys(local)) delete generated[name];
  for (const [name, value] of Object.entries(secrets)) generated[name] = value.value;
  const { vars, envFile: content } = mergeSiteVariables(generated, local);
  const envdir = `${own.environ}/`;
  const envdirFiles = files.filter((f) => f.path.startsWith(envdir) && !f.path.slice(envdir.length).includes('/'));
  const out = files.filter((f) => f !== envFile && !envdirFiles.includes(f));
  out.push({ ...envFile, content });
  const template = envdirFiles[0];
  const names = Object.keys(vars).sort();
  if (template) for (const name of names) out.push({ ...template, path: `${envdir}${name}`, content: vars[name]! });
  return {
    files: out,
    environment: { generated: Object.keys(generated).length, site: Object.keys(local).length },
    envdir: template ? { dir: own.environ, names } : undefined,
  };
}

/** The line a rollback prints about the environment the release runs with. */
export function describeRestoredEnvironment(releaseId: string, env: NonNullable<RestoredEnvironment['environment']>): string {
  const site = env.site === 1 ? '1 site variable' : `${env.site} site variables`;
  return `environment: release ${releaseId}'s generated values (${env.generated}) + ${site} from kraftwerk env set (current)`;
}

/**
 * Removes the files of an envdir whose names are not in `names` (root's folder,
 * closed to the site: root removes only regular files and links named there).
 */
export function pruneEnvdirCommand(dir: string, names: readonly string[]): Script {
  // Each name is one quoted word of the case pattern; '' alone matches no file name.
  const keep = raw(names.length ? names.map((n) => quote(n)).join('|') : "''");
  return sh`[ -d ${dir} ] || exit 0
for f in ${dir}/* ${dir}/.[!.]*; do
  [ -f "$f" ] || [ -L "$f" ] || continue
  case "\${f##*/}" in ${keep}) ;; *) rm -f -- "$f";; esac
done`;
}

/**
 * A preSync task (after core's inspect node read env.local, before anything
 * changes) that stops the deploy when `variable` will not be in the site's
 * environment from the user's side: `kraftwerk env set` on the node, `secrets:`
 * or `environ:`. For a plugin that takes a value from the user rather than
 * making it (an external database's URL); `setting` names the key that asks for it.
 */
export function userVariableCheck(site: Site, variable: string, setting: string): TaskSpec<DeployContext> {
  return {
    title: `${variable} is set`,
    stage: Stage.PREPARE + 10,
    run: (ctx, task) => {
      const { envLocal } = ctx.facts;
      if (!(variable in envLocal || variable in site.config.secrets || variable in site.config.environ)) {
        throw new KraftwerkError(`${setting} in kraftwerk.yaml, but ${variable} is not set for ${site.name} on ${ctx.node}`, {
          hint: `Set it before deploying: kraftwerk env set ${ctx.node} ${variable} (reads the value from stdin), or name a command for it under secrets:.`,
        });
      }
      task.title(`${variable} is set`);
    },
  };
}
