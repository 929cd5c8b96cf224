import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.ts';
import type { Plugin } from './plugin.ts';

/**
 * Built-in plugins, loaded on demand so that a command only pays for the
 * plugins it uses. Each module's default export is the plugin.
 */
const builtins = {
  python: () => import('../../plugins/python/index.ts'),
  uwsgi: () => import('../../plugins/uwsgi/index.ts'),
  runit: () => import('../../plugins/runit/index.ts'),
  nginx: () => import('../../plugins/nginx/index.ts'),
  files: () => import('../../plugins/files/index.ts'),
  postgres: () => import('../../plugins/postgres/index.ts'),
  redis: () => import('../../plugins/redis/index.ts'),
  processes: () => import('../../plugins/processes/index.ts'),
  cron: () => import('../../plugins/cron/index.ts'),
  backups: () => import('../../plugins/backups/index.ts'),
  tls: () => import('../../plugins/tls/index.ts'),
  sandbox: () => import('../../tools/sandbox/index.ts'),
  aws: () => import('../../tools/aws/index.ts'),
} satisfies Record<string, () => Promise<unknown>>;

export type BuiltinName = keyof typeof builtins;

/** The fixed stack: always on for every site, in this order. */
export const STACK_PLUGINS: BuiltinName[] = ['python', 'uwsgi', 'runit', 'nginx'];
/** Plugins a site turns on with `services:`. */
export const SERVICE_PLUGINS: BuiltinName[] = ['files', 'postgres', 'redis'];
/**
 * Applied to every site after its services; each does nothing while its key (`processes:`, `cron:`, `backups:`) is empty,
 * except that `tls` removes certificates an earlier `tls:` left once it is turned off.
 */
export const SITE_PLUGINS: BuiltinName[] = ['processes', 'cron', 'backups', 'tls'];
/** Plugins that add CLI commands and node names (not site services). */
export const COMMAND_PLUGINS: BuiltinName[] = ['sandbox', 'aws'];
/** Plugins every node gets at setup-node, whatever its sites enable (the original equipped every server with both). */
export const NODE_PLUGINS: BuiltinName[] = [...STACK_PLUGINS, 'postgres', 'redis', 'cron'];

export async function loadBuiltin(name: BuiltinName): Promise<Plugin> {
  return pluginFromModule(await builtins[name](), `built-in plugin ${name}`);
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
