import { ConfigError } from '../errors.ts';
import type { Plugin, Project } from './plugin.ts';
import { type BuiltinPlugins, loadBuiltins, loadLocalPlugins } from './registry.ts';
import { createSite } from '../config/site.ts';

/**
 * Load kraftwerk.yaml (or kraftwerk.config.ts) and every plugin active for the
 * site: the fixed stack, the services it enables, then its own plugins, in that
 * order (which is also the order their tasks keep within a stage).
 */
export async function loadProject(options: { cwd: string; configPath?: string; builtins: BuiltinPlugins }): Promise<Project> {
  const { builtins } = options;
  const { loadConfig } = await import('../config/load.ts');
  const loaded = await loadConfig({ cwd: options.cwd, configPath: options.configPath, knownServices: builtins.services });
  const site = createSite(loaded.config, {
    configFile: loaded.filepath,
    sourceDir: loaded.sourceDir,
    name: loaded.siteName,
  });
  const builtin = await loadBuiltins(builtins, [...builtins.stack, ...builtins.services.filter((s) => site.services.includes(s)), ...builtins.site]);
  const local = await loadLocalPlugins(loaded.config.plugins, loaded.filepath);
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
