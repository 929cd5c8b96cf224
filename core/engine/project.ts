import { ConfigError } from '../errors.ts';
import type { Plugin, Project } from './plugin.ts';
import { type BuiltinPlugins, loadBuiltins } from './registry.ts';
import { createSite } from '../config/site.ts';
import type { ConfigSchema } from '../config/settings.ts';

/** The built-in plugins a site can have, by name: their settings are the keys kraftwerk.yaml may have besides core's. */
export async function siteBuiltins(builtins: BuiltinPlugins): Promise<Map<string, Plugin>> {
  const names = [...builtins.stack, ...builtins.services, ...builtins.site];
  const plugins = await loadBuiltins(builtins, names);
  return new Map(names.map((n, i) => [n, plugins[i]!]));
}

/** The schema of kraftwerk.yaml without project-local plugins: core's keys and the built-ins' (`kraftwerk schema`, `init`, setup-node). */
export async function builtinConfigSchema(builtins: BuiltinPlugins): Promise<ConfigSchema> {
  const { buildConfigSchema } = await import('../config/settings.ts');
  return buildConfigSchema([...(await siteBuiltins(builtins)).values()], { services: builtins.services });
}

/**
 * Load kraftwerk.yaml (or kraftwerk.config.ts) and every plugin active for the
 * site: the fixed stack, the services it enables, then its own plugins, in that
 * order (which is also the order their tasks keep within a stage). Every
 * built-in a site can have is loaded first, and the project's own plugins
 * before validation: their settings are part of the schema.
 */
export async function loadProject(options: { cwd: string; configPath?: string; builtins: BuiltinPlugins }): Promise<Project> {
  const { builtins } = options;
  const { loadConfig } = await import('../config/load.ts');
  const all = await siteBuiltins(builtins);
  const loaded = await loadConfig({ cwd: options.cwd, configPath: options.configPath, knownServices: builtins.services, plugins: [...all.values()] });
  const site = createSite(loaded.config, {
    configFile: loaded.filepath,
    sourceDir: loaded.sourceDir,
    name: loaded.siteName,
  });
  const builtin = [...builtins.stack, ...builtins.services.filter((s) => site.services.includes(s)), ...builtins.site].map((n) => all.get(n)!);
  const local = loaded.localPlugins;
  const seen = new Set<string>();
  for (const [i, p] of [...builtin, ...local].entries()) {
    if (seen.has(p.name)) {
      throw new ConfigError(loaded.filepath, `plugins[${i - builtin.length}]`, `a plugin named "${p.name}" is already loaded`, {
        hint: 'Give the project-local plugin a name of its own.',
      });
    }
    seen.add(p.name);
  }
  return { site, plugins: [...builtin, ...local] as Plugin[] };
}
