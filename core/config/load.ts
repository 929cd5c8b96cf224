import { statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, type ConfigProblem, UsageError } from '../errors.ts';
import type { Locate } from './errors.ts';
import type { Plugin } from '../engine/plugin.ts';
import type { SettingsOwner, ValidConfig } from './settings.ts';
import { assertTrustedConfig, searchFolders, untrustedReason } from './trust.ts';

/**
 * Finds, parses and validates kraftwerk.yaml (or kraftwerk.config.ts/.js).
 * Everything the user wrote is checked here, before anything touches a server,
 * and every mistake is reported at once: one line per problem naming the file,
 * the line (YAML), the key path, what was expected and what was found.
 *
 * zod, yaml, cosmiconfig and jiti are imported inside the functions that need
 * them: the CLI's start-up time must not pay for them.
 */

/** Where the config is looked for, in this order, in the working folder and then each parent folder. */
export const CONFIG_FILES = ['kraftwerk.yaml', 'kraftwerk.yml', 'kraftwerk.config.ts', 'kraftwerk.config.js'] as const;

const YAML_EXTENSIONS = ['.yaml', '.yml', '.json'];
const MODULE_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];

export interface LoadConfigOptions {
  /** Folder the search starts in (the working directory). */
  cwd: string;
  /** An explicit config file (`--config`), relative to cwd; no search then. */
  configPath?: string;
  /** Names `services:` may use (the built-in service plugins). */
  knownServices: readonly string[];
  /** Names of the project's own plugins, also accepted in `services:`. */
  localPluginNames?: readonly string[];
  /** The built-in plugins whose settings (top-level keys) the file may have, besides core's and the project's plugins'. */
  plugins?: readonly SettingsOwner[];
}

export interface LoadedConfig {
  /** Validated, with defaults applied: core's keys and every plugin's (createSite splits them). */
  config: ValidConfig;
  /** The project-local plugins of `plugins:`, loaded (their settings are validated with the rest). */
  localPlugins: Plugin[];
  /** Absolute path of the config file. */
  filepath: string;
  /** Absolute path of the folder that is deployed (`src`, relative to the config file). */
  sourceDir: string;
  /** `package`, or the project folder's name made valid. */
  siteName: string;
}

/** A config file as its loader read it, before validation. */
interface RawConfig {
  /** The plain value (YAML as JS, or the TS/JS module's default export). */
  value: unknown;
  /** YAML only: the line of a key path. */
  locate?: Locate;
  /** YAML only: syntax errors (validation is skipped when there are any). */
  syntaxProblems: ConfigProblem[];
  format: 'yaml' | 'module';
}

export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const found = await findConfig(options);
  const filepath = found.filepath;
  const file = displayPath(options.cwd, filepath);
  const raw = found.raw;
  if (raw.syntaxProblems.length) {
    throw ConfigError.fromProblems(file, raw.syntaxProblems, { hint: 'Fix the YAML syntax at the line(s) shown.' });
  }
  if (raw.value === undefined || raw.value === null) {
    throw new ConfigError(file, '', raw.format === 'yaml' ? 'the file has no settings' : 'the module has no default export', {
      hint:
        raw.format === 'yaml'
          ? 'Write at least `domain: www.example.com`, or run `kraftwerk init` to write a commented kraftwerk.yaml.'
          : 'Write `export default defineConfig({ domain: "www.example.com" })`.',
    });
  }

  const [{ reservedSiteName }, { issuesToProblems, expectationMap, formatKeyPath, unknownNameMessage }, { buildConfigSchema, SettingsConflictError, markValidated, siteNameReservations }] =
    await Promise.all([import('./schema.ts'), import('./errors.ts'), import('./settings.ts')]);
  const problems: ConfigProblem[] = [];
  const configDir = path.dirname(filepath);
  const problemsOf = (list: ConfigProblem[]): AddProblem => (keyPath, problem) => list.push({ key: formatKeyPath(keyPath), problem, ...raw.locate?.(keyPath) });
  // Parse, load the project's plugins, build the schema from core's keys and every plugin's, validate.
  const pluginProblems: ConfigProblem[] = [];
  checkPlugins(raw, configDir, problemsOf(pluginProblems));
  checkPluginTrust(raw, configDir, problemsOf(pluginProblems));
  const localPlugins = pluginProblems.length ? [] : await loadPluginsOf(raw, filepath);
  let configSchema;
  try {
    configSchema = buildConfigSchema([...(options.plugins ?? []), ...localPlugins], { services: options.knownServices });
  } catch (error) {
    if (error instanceof SettingsConflictError) throw new ConfigError(file, 'plugins', error.message, { hint: error.hint });
    throw error;
  }
  const parsed = configSchema.schema.safeParse(raw.value, { error: expectationMap });
  if (!parsed.success) {
    const found = issuesToProblems(parsed.error.issues, { data: raw.value, schema: configSchema.schema, locate: raw.locate });
    problems.push(...found.map((p) => namingPlugin(p, configSchema.owners)));
  }
  // These checks read the raw value so that they add to the schema's problems instead of waiting for them to be fixed.
  const add = problemsOf(problems);
  checkServices(raw.value, [...options.knownServices, ...(options.localPluginNames ?? [])], add, unknownNameMessage);
  checkSecretNames(raw.value, add);
  problems.push(...pluginProblems);
  const src = (raw.value as { src?: unknown }).src;
  const sourceDir = path.resolve(configDir, typeof src === 'string' ? src : '.');
  if (typeof src === 'string' && !isDirectory(sourceDir)) add(['src'], `folder ${sourceDir} does not exist`);
  const pkg = (raw.value as { package?: unknown }).package;
  const siteName = pkg === undefined ? siteNameFromFolder(path.basename(configDir)) : typeof pkg === 'string' ? pkg : undefined;
  if (pkg === undefined && siteName === undefined) {
    add(
      ['package'],
      `the project folder name ${JSON.stringify(path.basename(configDir))} cannot be made into a site name ` +
        '(a lower-case letter, then letters, digits, - or _, at most 28 characters); set `package:` to the site name',
    );
  }
  const reserved = pkg === undefined && siteName !== undefined ? reservedSiteName(siteName, siteNameReservations([...(options.plugins ?? []), ...localPlugins])) : undefined;
  if (reserved) add(['package'], `the site name comes from the project folder ${configDir}: ${reserved}; set \`package:\` to a name of its own`);

  if (problems.length || !parsed.success) {
    // Stable sort: in file order where lines are known, schema order otherwise.
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw ConfigError.fromProblems(file, problems, {
      hint: problems.some((p) => p.key.startsWith('services'))
        ? undefined
        : 'Every key, with its type, is in the JSON Schema that `kraftwerk schema` prints.',
    });
  }
  return { config: markValidated(parsed.data, configSchema.owners) as ValidConfig, localPlugins, filepath, sourceDir, siteName: siteName! };
}

/** A problem of a plugin's key says whose setting it is: "… (setting of plugin cron)". */
function namingPlugin(problem: ConfigProblem, owners: ReadonlyMap<string, string>): ConfigProblem {
  const owner = owners.get(/^[^.[]*/.exec(problem.key)![0]);
  return owner ? { ...problem, problem: `${problem.problem} (setting of plugin ${owner})` } : problem;
}

/**
 * The project's plugins, loaded before validation so that their settings are
 * part of the schema. Only called when `plugins:` passed the checks above
 * (files that exist and may be executed).
 */
async function loadPluginsOf(raw: RawConfig, filepath: string): Promise<Plugin[]> {
  const entries = (raw.value as { plugins?: unknown }).plugins;
  if (!Array.isArray(entries) || !entries.every((e) => (typeof e === 'string' && e) || (e !== null && typeof e === 'object'))) return [];
  const { loadLocalPlugins } = await import('../engine/registry.ts');
  return loadLocalPlugins(entries, filepath);
}

type AddProblem = (keyPath: (string | number)[], problem: string) => void;

function checkServices(value: unknown, known: string[], add: AddProblem, unknownName: (kind: string, name: string, known: readonly string[]) => string) {
  const services = (value as { services?: unknown }).services;
  if (!Array.isArray(services)) return;
  const knownUnique = [...new Set(known)];
  const seen = new Set<string>();
  for (const [i, name] of services.entries()) {
    if (typeof name !== 'string' || !name) continue;
    if (!knownUnique.includes(name)) add(['services', i], unknownName('service', name, knownUnique));
    else if (seen.has(name)) add(['services', i], `\`${name}\` is listed twice`);
    seen.add(name);
  }
}

/**
 * A name in both `environ:` and `secrets:` has two values in one file: which one the site gets
 * would be a rule to remember, so it is refused (env set still overrides both, on the node).
 */
function checkSecretNames(value: unknown, add: AddProblem) {
  const { environ, secrets } = value as { environ?: unknown; secrets?: unknown };
  if (!environ || typeof environ !== 'object' || !secrets || typeof secrets !== 'object') return;
  for (const name of Object.keys(secrets)) {
    if (Object.hasOwn(environ, name)) add(['secrets', name], `${name} is in environ: too; give each variable one value (remove it from one of them)`);
  }
}

function checkPlugins(raw: RawConfig, configDir: string, add: AddProblem) {
  const plugins = (raw.value as { plugins?: unknown }).plugins;
  if (!Array.isArray(plugins)) return;
  for (const [i, entry] of plugins.entries()) {
    if (typeof entry === 'string' && entry) {
      const file = path.resolve(configDir, entry);
      if (!isFile(file)) add(['plugins', i], `plugin file ${file} does not exist (paths are relative to the config file)`);
    } else if (raw.format === 'yaml' && entry !== null && typeof entry === 'object') {
      add(['plugins', i], 'expected the path of a plugin file (.ts or .js); plugin objects are only possible in kraftwerk.config.ts');
    }
  }
}

/** Plugin files are code the CLI executes: the same rule as for the config file itself (see trust.ts). */
function checkPluginTrust(raw: RawConfig, configDir: string, add: AddProblem) {
  const plugins = (raw.value as { plugins?: unknown }).plugins;
  if (!Array.isArray(plugins)) return;
  for (const [i, entry] of plugins.entries()) {
    if (typeof entry !== 'string' || !entry) continue;
    const file = path.resolve(configDir, entry);
    const reason = isFile(file) ? untrustedReason(file) : undefined;
    if (reason) add(['plugins', i], `refusing to execute plugin file ${file}: ${reason}`);
  }
}

/**
 * The site name a folder name gives: lower-case, every run of characters a
 * site name cannot have replaced by '-'. Undefined when that still is not a
 * valid site name (it starts with a digit, or is too long).
 */
export function siteNameFromFolder(folder: string): string | undefined {
  const name = folder
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|[-_]+$/g, '');
  return /^[a-z][a-z0-9_-]{0,27}$/.test(name) ? name : undefined;
}

async function findConfig(options: LoadConfigOptions): Promise<{ filepath: string; raw: RawConfig }> {
  const { cosmiconfig } = await import('cosmiconfig');
  const loader = (filepath: string, content: string) => loadSource(filepath, content);
  const explorer = cosmiconfig('kraftwerk', {
    searchPlaces: [...CONFIG_FILES],
    loaders: Object.fromEntries([...YAML_EXTENSIONS, ...MODULE_EXTENSIONS].map((ext) => [ext, loader])),
    // An empty kraftwerk.yaml is still the project's config: report it instead of searching on.
    ignoreEmptySearchPlaces: false,
    searchStrategy: 'none',
    cache: false,
  });

  let result: Awaited<ReturnType<typeof explorer.search>> = null;
  if (options.configPath) {
    const filepath = path.resolve(options.cwd, options.configPath);
    const ext = path.extname(filepath);
    if (!YAML_EXTENSIONS.includes(ext) && !MODULE_EXTENSIONS.includes(ext)) {
      throw new UsageError(`config file ${options.configPath} is not a .yaml, .yml, .ts or .js file`);
    }
    if (!isFile(filepath)) {
      throw new UsageError(`config file ${options.configPath} does not exist`, { hint: 'Check the --config path (it is relative to the working folder).' });
    }
    assertTrustedConfig(filepath, { explicit: true });
    result = await guarded(filepath, options.cwd, () => explorer.load(filepath));
  } else {
    // Our own walk upward: cosmiconfig's "global" strategy would also read ~/.config/kraftwerk/, which is not a project config.
    const filepath = findTrustedConfigFile(options.cwd);
    if (filepath) result = await guarded(filepath, options.cwd, () => explorer.load(filepath));
  }
  if (!result) {
    throw new ConfigError(path.resolve(options.cwd), '', `no ${CONFIG_FILES.join(', ')} in this folder or any parent folder`, {
      hint: 'Run `kraftwerk init` to write a commented kraftwerk.yaml for this project.',
    });
  }
  const raw = result.isEmpty
    ? ({ value: undefined, syntaxProblems: [], format: moduleFormat(result.filepath) } satisfies RawConfig)
    : (result.config as RawConfig);
  return { filepath: result.filepath, raw };
}

/**
 * The config file that loadConfig would use, without reading it (cheap: no
 * parser is loaded). For commands that also work outside a project.
 */
export async function findConfigFile(cwd: string): Promise<string | undefined> {
  return findConfigFileSync(cwd);
}

/** The nearest config file of the bounded search (see trust.ts), refused before it is read when others control it. */
function findTrustedConfigFile(cwd: string): string | undefined {
  const file = findConfigFileSync(cwd);
  if (file) assertTrustedConfig(file);
  return file;
}

function findConfigFileSync(cwd: string): string | undefined {
  for (const dir of searchFolders(cwd)) {
    const file = CONFIG_FILES.map((name) => path.join(dir, name)).find(isFile);
    if (file) return file;
  }
  return undefined;
}

function moduleFormat(filepath: string): RawConfig['format'] {
  return YAML_EXTENSIONS.includes(path.extname(filepath)) ? 'yaml' : 'module';
}

/** A TS/JS config that throws while loading is the user's error (exit 2), named with its file. */
async function guarded<T>(where: string, cwd: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UsageError) throw error;
    const file = (error as { filepath?: string }).filepath ?? where;
    throw new ConfigError(displayPath(cwd, file), '', `cannot load the config: ${(error as Error).message ?? String(error)}`, {
      hint:
        moduleFormat(file) === 'module'
          ? 'A kraftwerk.config.ts must load on its own: check its imports (the package itself is imported as "kraftwerk").'
          : undefined,
    });
  }
}

async function loadSource(filepath: string, content: string): Promise<RawConfig> {
  if (moduleFormat(filepath) === 'yaml') return parseYaml(content);
  const { importModule } = await import('./import.ts');
  const mod = (await importModule(filepath)) as { default?: unknown } | undefined;
  return { value: mod?.default ?? undefined, syntaxProblems: [], format: 'module' };
}

async function parseYaml(text: string): Promise<RawConfig> {
  const { parseDocument, LineCounter, isMap, isSeq, isScalar, isAlias } = await import('yaml');
  const lineCounter = new LineCounter();
  // merge: YAML anchors with `<<:` are a common way to share settings between nodes.
  const doc = parseDocument(text, { lineCounter, merge: true, prettyErrors: false });
  const syntaxProblems = doc.errors.map((error): ConfigProblem => {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    let message = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    if (error.code === 'DUPLICATE_KEY') message += ` (\`${/^[^:\n]*/.exec(text.slice(error.pos[0]))![0].trim()}\` appears twice)`;
    return { key: '', problem: `YAML syntax error: ${message}`, line, column: col };
  });
  if (syntaxProblems.length) return { value: undefined, syntaxProblems, format: 'yaml' };

  const locate: Locate = (keyPath) => {
    type AnyNode = { range?: [number, number, number] | null } | null | undefined;
    let node: unknown = doc.contents;
    let pos: number | undefined;
    for (const seg of keyPath) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
        if (!pair) break;
        pos = (pair.key as AnyNode)?.range?.[0] ?? pos;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
        node = node.items[seg];
        pos = (node as AnyNode)?.range?.[0] ?? pos;
      } else break;
    }
    // A top-level key that is missing has no line of its own.
    if (pos === undefined) return keyPath.length ? {} : { line: 1 };
    return { line: lineCounter.linePos(pos).line };
  };
  return { value: doc.toJS({ maxAliasCount: 1000 }), locate, syntaxProblems: [], format: 'yaml' };
}

function displayPath(cwd: string, file: string): string {
  const rel = path.relative(cwd, file);
  return rel === '' || rel.startsWith('..') ? file : rel;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
