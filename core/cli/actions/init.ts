import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Logger } from '../../engine/context.ts';
import type { InitProject, Plugin } from '../../engine/plugin.ts';
import type { BuiltinPlugins } from '../../engine/registry.ts';
import { UsageError } from '../../errors.ts';
import { CONFIG_FILES, siteNameFromFolder } from '../../config/load.ts';
import type { z } from 'zod';
import type { ConfigInput } from '../../config/schema.ts';

/**
 * `kraftwerk init`: a commented kraftwerk.yaml for the project in the working
 * folder. What can be guessed from the project is filled in (the WSGI module,
 * services from the dependencies); every other key is there, commented out,
 * with a one-line explanation and an example, so the file is its own manual.
 */

export interface ProjectGuess {
  siteName: string;
  /** False when the folder name cannot be a site name: `package:` is then written uncommented. */
  siteNameFromFolder: boolean;
  framework?: 'django' | 'flask';
  wsgi?: { value: string; from: string };
  services: { name: string; from: string }[];
  /** Django settings module, for the environ example. */
  settingsModule?: string;
}

export interface InitResult {
  /** Absolute path of the written file. */
  file: string;
  guess: ProjectGuess;
}

/** Folders that never hold the project's own code. */
const SKIP_DIRS = new Set(['node_modules', '__pycache__', 'venv', 'env', 'site-packages', 'build', 'dist']);

export async function initCommand(options: { cwd: string; force?: boolean; log: Logger; builtins: BuiltinPlugins }): Promise<void> {
  const { file, guess } = await initProject(options);
  const rel = path.relative(options.cwd, file);
  options.log.info(`wrote ${rel} for site ${guess.siteName}`);
  if (guess.wsgi) options.log.info(`  wsgi: ${guess.wsgi.value} (from ${guess.wsgi.from})`);
  else options.log.warn(`  could not find the WSGI application: set \`wsgi:\` in ${rel} (module[:callable])`);
  for (const s of guess.services) options.log.info(`  service ${s.name} (from ${s.from})`);
  if (!guess.siteNameFromFolder) options.log.warn(`  the folder name cannot be a site name: choose one in \`package:\``);
  options.log.info(`Next: set \`domain:\` and \`nodes:\`, then run kraftwerk setup-node <node> and kraftwerk deploy <node>.`);
}

export async function initProject(options: { cwd: string; force?: boolean; builtins: BuiltinPlugins }): Promise<InitResult> {
  const existing = CONFIG_FILES.map((f) => path.join(options.cwd, f)).find((f) => existsSync(f));
  if (existing && !options.force) {
    throw new UsageError(`${path.basename(existing)} already exists in ${options.cwd}`, {
      hint: 'Run `kraftwerk init --force` to replace it with a fresh kraftwerk.yaml.',
    });
  }
  const { builtinConfigSchema, siteBuiltins } = await import('../../engine/project.ts');
  const plugins = [...(await siteBuiltins(options.builtins)).values()];
  const guess = guessProject(options.cwd, plugins, options.builtins.services);
  const file = path.join(options.cwd, 'kraftwerk.yaml');
  writeFileSync(file, renderInitConfig(guess, (await builtinConfigSchema(options.builtins)).schema.shape, plugins), { flag: options.force ? 'w' : 'wx' });
  return { file, guess };
}

/**
 * What the files of a Python project say about its config. `plugins`: the site's built-ins,
 * of which the one that installs packages reads the dependencies (`init.dependencies`), and the
 * services among them (`serviceNames`, all when not given) say whether the project needs them.
 */
export function guessProject(cwd: string, plugins: readonly Plugin[] = [], serviceNames: readonly string[] = plugins.map((p) => p.name)): ProjectGuess {
  const folderName = siteNameFromFolder(path.basename(path.resolve(cwd)));
  const guess: ProjectGuess = {
    siteName: folderName ?? 'site',
    siteNameFromFolder: folderName !== undefined,
    services: [],
  };
  Object.assign(guess, guessWsgi(cwd));
  const read = (file: string) => readText(path.join(cwd, file));
  const bare = initProjectView(guess, new Set(), read);
  const project = initProjectView(guess, new Set(plugins.flatMap((p) => [...(p.init?.dependencies?.(bare) ?? [])])), read);
  for (const plugin of plugins.filter((p) => serviceNames.includes(p.name))) {
    const from = plugin.init?.detect?.(project);
    if (from) guess.services.push({ name: plugin.name, from });
  }
  return guess;
}

/** The guess as the plugins' `init` answers see it. */
function initProjectView(guess: Pick<ProjectGuess, 'siteName' | 'framework' | 'settingsModule'>, requirements: ReadonlySet<string> = new Set(), read: (file: string) => string = () => ''): InitProject {
  return {
    siteName: guess.siteName,
    domain: `${guess.siteName.replace(/_/g, '-')}.example.com`,
    module: guess.siteName.replace(/-/g, '_'),
    framework: guess.framework,
    settingsModule: guess.settingsModule,
    requirements,
    read,
  };
}

function guessWsgi(cwd: string): Partial<ProjectGuess> {
  const dirs = packageDirs(cwd);
  // Django: <project>/wsgi.py defines `application` (startproject writes it).
  const django = dirs
    .map((d) => ({ d, file: path.join(cwd, d, 'wsgi.py') }))
    .filter(({ file }) => /^application\s*=/m.test(readText(file)))
    .sort((a, b) => Number(existsSync(path.join(cwd, b.d, 'settings.py'))) - Number(existsSync(path.join(cwd, a.d, 'settings.py'))));
  if (django[0]) {
    const { d } = django[0];
    const settings = existsSync(path.join(cwd, d, 'settings.py'))
      ? `${d}.settings`
      : existsSync(path.join(cwd, d, 'settings')) ? `${d}.settings` : undefined;
    return { framework: 'django', wsgi: { value: `${d}.wsgi`, from: `${d}/wsgi.py` }, settingsModule: settings };
  }
  // Flask: `app = Flask(__name__)` in app.py, wsgi.py or a package's __init__.py.
  const candidates = [
    { module: 'wsgi', file: 'wsgi.py' },
    { module: 'app', file: 'app.py' },
    ...dirs.map((d) => ({ module: d, file: `${d}/__init__.py` })),
  ];
  for (const c of candidates) {
    const m = /^(\w+)\s*=\s*Flask\(/m.exec(readText(path.join(cwd, c.file)));
    if (m) return { framework: 'flask', wsgi: { value: m[1] === 'application' ? c.module : `${c.module}:${m[1]}`, from: c.file } };
  }
  // Any WSGI module that follows the convention.
  if (/^application\s*=/m.test(readText(path.join(cwd, 'wsgi.py')))) return { wsgi: { value: 'wsgi', from: 'wsgi.py' } };
  return {};
}

/** Top-level folders that are Python packages (names that can be imported). */
function packageDirs(cwd: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(cwd);
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^[A-Za-z_]\w*$/.test(e) && !SKIP_DIRS.has(e) && isDir(path.join(cwd, e)))
    .sort();
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Core's keys, and the built-in plugins' (whose examples are written too, explained by their own schemas). */
type Key = Exclude<keyof ConfigInput, '$schema'> | (string & {});

/**
 * An example value for every key, shown commented out. Exported so that a test
 * validates them all against the schema: the examples cannot drift from it.
 */
export function keyExamples(guess: Pick<ProjectGuess, 'siteName' | 'framework' | 'settingsModule' | 'wsgi'>, plugins: readonly Plugin[] = []): Record<Key, unknown> {
  const project = initProjectView(guess);
  const { domain, module } = project;
  const django = guess.framework === 'django';
  const core: Record<Key, unknown> = {
    domain,
    aliases: [`www.${domain}`],
    preview_domain: `previews.${domain}`,
    services: plugins.filter((p) => p.init?.detect).map((p) => p.name),
    wsgi: guess.wsgi?.value ?? `${module}.wsgi`,
    environ: django
      ? { DJANGO_SETTINGS_MODULE: guess.settingsModule ?? `${module}.settings`, DEBUG: false }
      : { FLASK_DEBUG: 0, LOG_LEVEL: 'info' },
    secrets: { SECRET_KEY: `op read op://production/${guess.siteName}/secret-key`, SENTRY_DSN: `pass show ${guess.siteName}/sentry-dsn` },
    package: guess.siteName,
    src: '.',
    nodes: {
      production: 'web1.example.com',
      stage: { host: '203.0.113.10', user: 'admin', port: 2222, identity_file: '~/.ssh/id_ed25519', sudo: true },
      everywhere: ['production', 'stage'],
    },
    default_node: 'stage',
    apt: ['libjpeg62-turbo', 'gettext'],
    release: django
      ? ['python manage.py migrate --noinput', 'python manage.py collectstatic --noinput']
      : ['flask db upgrade'],
    healthcheck: { path: '/', status: 200, timeout: 10, retries: 5 },
    timeouts: { release_commands: '30m', install: '30m', healthcheck: '5m', silence: '10m' },
    keep_releases: 5,
    exclude: ['*.pyc', '.git/', 'node_modules/', 'media/'],
    plugins: ['./deploy/revision.ts'],
  };
  // Then each plugin's keys, in the order the plugins apply.
  return Object.assign(core, ...plugins.map((p) => p.init?.examples?.(project) ?? {}));
}

/** The text of kraftwerk.yaml for a guessed project (pure); `shape` is the schema's keys (core's and the built-in plugins'), whose descriptions explain each. */
export function renderInitConfig(guess: ProjectGuess, shape: Readonly<Record<string, z.ZodType>>, plugins: readonly Plugin[] = []): string {
  const examples = keyExamples(guess, plugins);
  const active: Partial<Record<Key, { value: unknown; note?: string }>> = {
    domain: { value: examples.domain, note: 'placeholder: put the real domain here' },
  };
  if (guess.wsgi) active.wsgi = { value: guess.wsgi.value, note: `guessed from ${guess.wsgi.from}` };
  if (guess.services.length) {
    active.services = {
      value: guess.services.map((s) => s.name),
      note: `guessed: ${guess.services.map((s) => `${s.name} from ${s.from}`).join('; ')}`,
    };
  }
  if (!guess.siteNameFromFolder) active.package = { value: guess.siteName, note: 'the folder name cannot be a site name: choose one' };

  const out = [
    `# Kraftwerk configuration for the site "${guess.siteName}" (written by kraftwerk init).`,
    '# Keys that are commented out show an example; left out, they take the default named.',
    '# Editor completion and checks (YAML language server): run',
    '#   kraftwerk schema > .kraftwerk.schema.json',
    '# and put `# yaml-language-server: $schema=.kraftwerk.schema.json` on the first line.',
  ];
  if (!guess.wsgi) out.push('#', '# The WSGI application was not found: set `wsgi:` below (module[:callable]).');
  for (const key of Object.keys(examples) as Key[]) {
    const field = shape[key]!;
    out.push('', `# ${explain(field.description ?? key, defaultOf(field))}`);
    const set = active[key];
    if (set) {
      if (set.note) out.push(`# (${set.note})`);
      out.push(stringify({ [key]: set.value }).trimEnd());
    } else {
      out.push(...stringify({ [key]: examples[key] }).trimEnd().split('\n').map((l) => `# ${l}`));
    }
  }
  return `${out.join('\n')}\n`;
}

/** The description as a sentence, with a plain default value named. */
function explain(description: string, defaultValue: unknown): string {
  const shown = typeof defaultValue === 'number' || typeof defaultValue === 'string' ? ` (default: ${defaultValue})` : '';
  return `${description}${shown}.`;
}

function defaultOf(field: unknown): unknown {
  const def = (field as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def;
  return def.type === 'default' ? def.defaultValue : undefined;
}
