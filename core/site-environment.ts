import { EnvironmentVars } from './context.ts';
import type { Hooks } from './hooks.ts';
import type { Site } from './site.ts';

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
