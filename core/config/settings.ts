import { z } from 'zod';
import { ConfigError, KraftwerkError } from '../errors.ts';
import { expectationMap, issuesToProblems } from './errors.ts';
import { type Config, coreConfigShape, type SiteNameReservation, siteNameSchema } from './schema.ts';

/**
 * Plugins own their config. A plugin declares the top-level keys of
 * kraftwerk.yaml it reads, a zod schema each (`settings` in definePlugin);
 * core merges them with its own keys into the one schema that validates the
 * file, names the plugin in the errors of its keys, and writes the JSON Schema
 * (`kraftwerk schema`). The plugin reads its validated values through
 * `settingsOf(site, settings)`, typed from its own schemas: core's `Config`
 * type knows only core's keys.
 */

/** The top-level keys of kraftwerk.yaml one plugin owns: key → zod schema (with its defaults and `.describe()` text). */
export type SettingsShape = Readonly<Record<string, z.ZodType>>;

/** The validated values of a plugin's keys, defaults applied. */
export type SettingsOf<S extends SettingsShape> = { readonly [K in keyof S]: z.output<S[K]> };

/** The values of the plugins' keys of one site, as validated (every declared key is present, undefined when optional and absent). */
export type SiteSettings = Readonly<Record<string, unknown>>;

/** What settingsOf reads from: a Site, or anything with its settings. */
interface HasSettings {
  readonly settings: SiteSettings;
  readonly configFile?: string;
}

/**
 * The plugin's validated settings. `owner` is the plugin (its `settings`) or
 * the settings object itself. A key that was not part of validation (its
 * plugin was not loaded with the config) is a programming error, not a value
 * to guess.
 */
export function settingsOf<S extends SettingsShape>(site: HasSettings, owner: S | { readonly name: string; readonly settings?: S }): SettingsOf<S> {
  const shape = (typeof owner.name === 'string' ? (owner as { settings?: S }).settings : owner) as S | undefined;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape ?? {})) {
    if (!(key in site.settings)) {
      throw new Error(`the setting \`${key}\` was not validated with the config: the plugin that declares it was not loaded with it`);
    }
    out[key] = site.settings[key];
  }
  return out as SettingsOf<S>;
}

/**
 * Checks the plugin's values again with its own schemas, where a plugin pastes
 * them into a file: the same rules as the validation of kraftwerk.yaml, for a
 * site whose values did not come through it (a project-local plugin's, a
 * test's). A ConfigError names each key that fails.
 */
export function checkSettings(site: HasSettings, shape: SettingsShape): void {
  const values = Object.fromEntries(Object.keys(shape).map((key) => [key, site.settings[key]]));
  const parsed = z.strictObject(shape).safeParse(values, { error: expectationMap });
  if (parsed.success) return;
  const file = site.configFile ?? 'kraftwerk.yaml';
  const problems = issuesToProblems(parsed.error.issues, { data: values, schema: z.strictObject(shape) });
  throw ConfigError.fromProblems(file, problems, { hint: `Fix \`${/^[^.[]*/.exec(problems[0]!.key)![0]}:\` in ${file}.` });
}

/** A plugin as far as the config is concerned. */
export interface SettingsOwner {
  readonly name: string;
  readonly settings?: SettingsShape;
  /** Why a site may not have this name on a node with the plugin's part (e.g. its own database), or undefined. */
  reservesSiteName?: SiteNameReservation;
}

/** The plugins' reasons a site may not have a name (each called on its plugin). */
export function siteNameReservations(plugins: readonly SettingsOwner[]): SiteNameReservation[] {
  return plugins.flatMap((p) => (p.reservesSiteName ? [(name: string) => p.reservesSiteName!(name)] : []));
}

/** The schema of kraftwerk.yaml for a set of plugins: core's keys and theirs. */
export interface ConfigSchema {
  /** Validates the whole file (unknown keys are errors). */
  readonly schema: z.ZodObject;
  /** Plugin name by the top-level key it owns. */
  readonly owners: ReadonlyMap<string, string>;
  /** Validates (throws zod's error) and records the plugin keys, for built-in callers and tests; loadConfig reports problems instead. */
  parse(value: unknown): ValidConfig;
}

/** kraftwerk.yaml validated: core's keys (`Config`) and every plugin's, as one object. */
export type ValidConfig = Config & SiteSettings;

/** Two plugins, or a plugin and core, claim the same key: the plugin's author (or the project's) must rename one. */
export class SettingsConflictError extends KraftwerkError {
  override exitCode = 2;
}

/**
 * Core's keys plus each plugin's. A key claimed twice is an error naming both
 * claimants. Keys keep their order: core's, then each plugin's in the order
 * the plugins are given.
 */
export function buildConfigSchema(plugins: readonly SettingsOwner[], options: { services?: readonly string[] } = {}): ConfigSchema {
  const owners = new Map<string, string>();
  const shape: Record<string, z.ZodType> = { ...coreConfigShape };
  // The site name must not be one the plugins' parts of the node own; `services:` lists the plugins it may name.
  const reservations = siteNameReservations(plugins);
  if (reservations.length) shape.package = siteNameSchema(reservations).optional().describe(coreConfigShape.package.description!);
  if (options.services) shape.services = coreConfigShape.services.describe(`Service plugins to enable: ${options.services.join(', ')}`);
  for (const plugin of plugins) {
    for (const [key, schema] of Object.entries(plugin.settings ?? {})) {
      const claimed = key in coreConfigShape ? 'core' : owners.has(key) ? `plugin ${owners.get(key)}` : undefined;
      if (claimed) {
        throw new SettingsConflictError(`plugin ${plugin.name} declares the setting \`${key}\`, which ${claimed} already owns`, {
          hint: 'Each top-level key of kraftwerk.yaml belongs to one plugin: rename the setting of the project-local plugin.',
        });
      }
      owners.set(key, plugin.name);
      shape[key] = schema;
    }
  }
  const schema = z.strictObject(shape).describe('Kraftwerk site configuration');
  return {
    schema,
    owners,
    parse: (value) => markValidated(schema.parse(value) as Record<string, unknown>, owners) as ValidConfig,
  };
}

/**
 * The plugin keys each validated config object was validated with (its
 * plugins'), so that createSite can tell a key that is absent (optional, not
 * given) from one no plugin's schema checked.
 */
const validatedKeys = new WeakMap<object, readonly string[]>();

/** Records that `data` was validated with the plugin keys of `owners`. */
export function markValidated(data: Record<string, unknown>, owners: ReadonlyMap<string, string>): Record<string, unknown> {
  validatedKeys.set(data, [...owners.keys()]);
  return data;
}

/** Core's keys of a validated config, and the rest (the plugins'). */
export function splitConfig(data: ValidConfig): { config: Config; settings: SiteSettings } {
  const config: Record<string, unknown> = {};
  const settings: Record<string, unknown> = {};
  for (const key of validatedKeys.get(data) ?? []) settings[key] = undefined;
  for (const [key, value] of Object.entries(data)) (key in coreConfigShape ? config : settings)[key] = value;
  return { config: config as Config, settings };
}
