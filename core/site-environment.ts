import { EnvironmentVars } from './context.ts';
import { parseEnvFile, renderEnvFile, siteNamesOf } from './env.ts';
import type { Hooks } from './hooks.ts';
import { releaseConfig, type Site } from './site.ts';
import type { RemoteFile } from './transport/remote.ts';

/** Where a variable of the site's environment comes from, lowest precedence first. */
export type EnvSource = { kind: 'plugin'; plugin: string; secret: boolean } | { kind: 'environ' } | { kind: 'local' };

export interface SiteEnvironment {
  vars: Record<string, string>;
  sources: Record<string, EnvSource>;
}

/**
 * The site's environment as a deploy writes it into the release (.kraftwerk/env and the envdir): the plugins'
 * variables (the `environment` hook), then `environ:` from kraftwerk.yaml, then
 * what `kraftwerk env set` stored (shared/env.local). `previous` is the
 * environment on the server now, so plugins can keep generated secrets.
 */
export async function computeSiteEnvironment(
  hooks: Hooks,
  site: Site,
  node: string,
  previous: Record<string, string>,
  local: Record<string, string>,
): Promise<SiteEnvironment> {
  const env = new EnvironmentVars();
  await hooks.environment.promise({ site, node, previous }, env);
  const vars: Record<string, string> = {};
  const sources: Record<string, EnvSource> = {};
  for (const [k, v] of env.vars) {
    vars[k] = v.value;
    sources[k] = { kind: 'plugin', plugin: v.plugin, secret: v.secret };
  }
  for (const [k, v] of Object.entries(site.config.environ)) {
    vars[k] = String(v);
    sources[k] = { kind: 'environ' };
  }
  for (const [k, v] of Object.entries(local)) {
    vars[k] = v;
    sources[k] = { kind: 'local' };
  }
  return { vars, sources };
}

/** What a rollback (or an undo) runs a release with: see withCurrentSiteVariables. */
export interface RestoredEnvironment {
  /** The release's env, .kraftwerk/env and its envdir, with the site variables of now. */
  files: RemoteFile[];
  /** Variables the release brought itself (plugins and its kraftwerk.yaml `environ:`). */
  generated: number;
  /** Variables taken from shared/env.local as it is now. */
  site: number;
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
 * no other release needs rewriting when a secret changes.
 *
 * The envdir (releaseConfig's `environ`, one file per variable, an empty file
 * unsets it at uWSGI's next start) follows the same variables; its files are
 * only rewritten when the release had an envdir.
 */
export function withCurrentSiteVariables(files: readonly RemoteFile[], releasePath: string, local: Record<string, string>): RestoredEnvironment {
  const own = releaseConfig(releasePath);
  const envFile = files.find((f) => f.path === own.env && !f.remove);
  if (!envFile) return { files: [...files], generated: 0, site: 0 };
  const generated = parseEnvFile(envFile.content);
  for (const name of siteNamesOf(envFile.content)) delete generated[name];
  for (const name of Object.keys(local)) delete generated[name];
  const vars = { ...generated, ...local };
  const envdir = `${own.environ}/`;
  const envdirFiles = files.filter((f) => f.path.startsWith(envdir) && !f.path.slice(envdir.length).includes('/'));
  const out = files.filter((f) => f !== envFile && !envdirFiles.includes(f));
  out.push({ ...envFile, content: renderEnvFile(vars, Object.keys(local)) });
  const template = envdirFiles[0];
  if (template) {
    const names = new Set([...envdirFiles.map((f) => f.path.slice(envdir.length)), ...Object.keys(vars)]);
    for (const name of [...names].sort()) out.push({ ...template, path: `${envdir}${name}`, content: vars[name] ?? '' });
  }
  return { files: out, generated: Object.keys(generated).length, site: Object.keys(local).length };
}

/** The line a rollback prints about the environment the release runs with. */
export function describeRestoredEnvironment(releaseId: string, env: Pick<RestoredEnvironment, 'generated' | 'site'>): string {
  const site = env.site === 1 ? '1 site variable' : `${env.site} site variables`;
  return `environment: release ${releaseId}'s generated values (${env.generated}) + ${site} from kraftwerk env set (current)`;
}
