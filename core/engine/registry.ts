import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, PluginError } from '../errors.ts';
import type { Site } from '../config/site.ts';
import type { Plugin } from './plugin.ts';

/**
 * The built-in plugins, as the CLI wiring hands them to core (core itself names
 * none: the table lives with the plugins). Each loader's module default-exports
 * the plugin; loaders run on demand, so a command only pays for the plugins it uses.
 */
export interface BuiltinPlugins {
  readonly load: Readonly<Record<string, () => Promise<unknown>>>;
  /** The fixed stack: always on for every site, in this order. */
  readonly stack: readonly string[];
  /** Plugins a site turns on with `services:`. */
  readonly services: readonly string[];
  /** Applied to every site after its services; each does nothing while its own config key is empty. */
  readonly site: readonly string[];
  /** Plugins that add CLI commands and node names (not site services). */
  readonly commands: readonly string[];
  /** Plugins every node gets at setup-node, whatever its sites enable; `status` shows their node-wide state. */
  readonly node: readonly string[];
}

export async function loadBuiltin(builtins: BuiltinPlugins, name: string): Promise<Plugin> {
  const load = builtins.load[name];
  if (!load) throw new Error(`no built-in plugin named ${name}`);
  return pluginFromModule(await load(), `built-in plugin ${name}`);
}

export function loadBuiltins(builtins: BuiltinPlugins, names: readonly string[]): Promise<Plugin[]> {
  return Promise.all(names.map((n) => loadBuiltin(builtins, n)));
}

/** The plugin members that contribute to a collector instead of tapping a hook. */
type Contribution = 'nodeStatus' | 'logs' | 'doctorChecks';

/**
 * Ask every plugin that declares `member` to add to `collector`, scoped to the
 * plugin as hook taps are (forPlugin); a failure names the plugin and the member.
 */
export function collectFromPlugins<T extends { forPlugin(plugin: string): T }>(
  plugins: readonly Plugin[],
  member: Contribution,
  collector: T,
  site: Site,
): T {
  for (const p of plugins) {
    const contribute = p[member] as ((collector: T, site: Site) => void) | undefined;
    try {
      contribute?.call(p, collector.forPlugin(p.name), site);
    } catch (err) {
      throw PluginError.of(p.name, member, undefined, err);
    }
  }
  return collector;
}

/** Pick the plugin out of a module: its default export, a `plugin` export, or a class to instantiate. */
export function pluginFromModule(mod: unknown, where: string): Plugin {
  const m = mod as Record<string, unknown>;
  let candidate: unknown = m?.default ?? m?.plugin ?? mod;
  // jiti and CJS interop may nest the default export once more.
  if (candidate && typeof candidate === 'object' && 'default' in candidate && !('name' in candidate)) {
    candidate = (candidate as { default: unknown }).default;
  }
  if (typeof candidate === 'function' && (candidate as { prototype?: { apply?: unknown } }).prototype?.apply) {
    candidate = new (candidate as new () => Plugin)();
  }
  if (!isPlugin(candidate)) {
    throw new Error(`${where} does not export a plugin (an object with a name and an apply function, or a class with apply)`);
  }
  return candidate;
}

export function isPlugin(v: unknown): v is Plugin {
  if (!v || typeof v !== 'object') return false;
  const p = v as Record<string, unknown>;
  return typeof p.name === 'string' && p.name.length > 0 && (typeof p.apply === 'function' || typeof p.commands === 'function');
}

/** Load the project-local plugins listed in the config (files relative to it, or objects from kraftwerk.config.ts). */
export async function loadLocalPlugins(entries: readonly unknown[], configFile: string): Promise<Plugin[]> {
  const out: Plugin[] = [];
  for (const [i, entry] of entries.entries()) {
    if (typeof entry !== 'string') {
      if (!isPlugin(entry)) throw new ConfigError(configFile, `plugins[${i}]`, 'expected a plugin object with a name and apply()');
      out.push(entry);
      continue;
    }
    const file = path.resolve(path.dirname(configFile), entry);
    let mod: unknown;
    try {
      const { importModule } = await import('../config/import.ts');
      mod = await importModule(file);
    } catch (err) {
      throw new ConfigError(configFile, `plugins[${i}]`, `cannot load ${entry}: ${(err as Error).message}`, {
        hint: 'The path is relative to the config file; the plugin must be a .ts, .mts, .js or .mjs file.',
      });
    }
    try {
      out.push(pluginFromModule(mod, entry));
    } catch (err) {
      throw new ConfigError(configFile, `plugins[${i}]`, (err as Error).message);
    }
  }
  return out;
}

/** Import a module by absolute path (JS natively). */
export async function importJs(file: string): Promise<unknown> {
  return import(pathToFileURL(file).href);
}

/** The plugin members that answer a question; the first plugin (in the order they apply) that answers wins. */
type Question = 'siteUrl' | 'keepBackups';

/** Ask the plugins that declare `question` about `site`; a failure names the plugin and the member. */
export function firstAnswer<Q extends Question>(plugins: readonly Plugin[], question: Q, site: Site): ReturnType<NonNullable<Plugin[Q]>> | undefined {
  for (const p of plugins) {
    const ask = p[question] as ((site: Site) => ReturnType<NonNullable<Plugin[Q]>> | undefined) | undefined;
    let answer;
    try {
      answer = ask?.call(p, site);
    } catch (err) {
      throw PluginError.of(p.name, question, undefined, err);
    }
    if (answer !== undefined) return answer;
  }
  return undefined;
}
