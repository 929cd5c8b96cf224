import type { Command as CliCommand } from 'commander';
import type { RunOptions, Logger } from './context.ts';
import type { Hooks } from './hooks.ts';
import type { Site } from '../config/site.ts';
import type { TaskSpec } from './tasks.ts';
import type { Remote, SshTarget } from '../remote/remote.ts';
import type { NodeStatusParts } from './status.ts';
import type { LogSources } from './logs.ts';
import type { DoctorChecks } from './doctor.ts';
import type { SettingsShape } from '../config/settings.ts';
import type { RoleSpec } from './topology.ts';

/**
 * A Kraftwerk plugin. Built-in plugins (plugins/<name>/index.ts) and
 * project-local ones use exactly this API and import only from the package's
 * public entry point.
 */
export interface Plugin<S extends SettingsShape = SettingsShape> {
  /** Shown in task titles and error messages; `services:` enables a plugin by this name. */
  readonly name: string;
  /** One line shown by `kraftwerk plugins`. */
  readonly description?: string;
  /**
   * The top-level keys of kraftwerk.yaml this plugin owns, a zod schema each
   * (`z` from the entry). Validated with the rest of the file; read them with
   * `settingsOf(site, settings)`.
   */
  readonly settings?: S;
  /**
   * Roles this plugin defines for `roles:` in kraftwerk.yaml (core defines web, worker, db and lb):
   * e.g. a database plugin's own role, part of db.
   */
  readonly roles?: readonly RoleSpec[];
  /**
   * The roles on whose nodes this plugin's tasks run (deploy phases, setup-node, destroy, dump);
   * without it, on every node. A group where no node declares roles gives every node every role.
   */
  readonly runsOn?: readonly string[];
  /** Tap the hooks for `site`. Called once per command, before any node is touched. */
  apply?(hooks: Hooks, site: Site): void;
  /** Add commands to the CLI (e.g. `sandbox`, `create-node`). Keep heavy imports inside the actions. */
  commands?(program: CliCommand, kit: CommandKit): void;
  /** Resolve a node name this plugin knows (e.g. a sandbox), before ~/.ssh/config is consulted. */
  resolveNode?(name: string): Promise<Partial<SshTarget> | undefined>;
  // What `status` and `logs` read: declared, not tapped, as they run no task and change nothing.
  /**
   * Add to `kraftwerk status`: node-wide processes and per-site lines. Called for the
   * plugins every node has and the project's own (outside a project with a placeholder site).
   */
  nodeStatus?(status: NodeStatusParts, site: Site): void;
  /** Add the log sources of `site` that `kraftwerk logs` shows. */
  logs?(sources: LogSources, site: Site): void;
  /**
   * Add checks to `kraftwerk doctor` (e.g. certificates not near expiry): `checks.node({ name, run })`,
   * read-only, run on each node checked. Asked of the plugins every node has and the project's own.
   */
  doctorChecks?(checks: DoctorChecks, site: Site): void;
  /**
   * The address the site answers at, shown once a deploy is done (e.g. https once the site has
   * a certificate). The first plugin that gives one wins; without one it is http://<domain>/.
   */
  siteUrl?(site: Site): string | undefined;
  /**
   * Why a site may not have this name on a node with this plugin (the name of its own database,
   * user or role, which a site would take over), as `"x" is reserved: …`; undefined when it may.
   */
  reservesSiteName?(name: string): string | undefined;
  /** What the plugin adds to `kraftwerk init`: whether the project needs it, examples of its settings. */
  readonly init?: PluginInit;
  /** How many of the site's backups `kraftwerk backup` keeps (older ones are rotated out); undefined keeps all. */
  keepBackups?(site: Site): number | undefined;
}

/** What `kraftwerk init` learnt of the project folder, for the plugins' `init` answers. */
export interface InitProject {
  readonly siteName: string;
  /** The example domain the file shows. */
  readonly domain: string;
  /** The site name as a Python module name. */
  readonly module: string;
  readonly framework?: 'django' | 'flask';
  /** Django settings module (e.g. shop.settings), when found. */
  readonly settingsModule?: string;
  /** Normalised distribution names the project depends on, as the plugins' `init.dependencies` read them. */
  readonly requirements: ReadonlySet<string>;
  /** A file of the project, relative to its folder, as text ('' when it is missing). */
  read(file: string): string;
}

export interface PluginInit {
  /** The plugin that installs the project's packages: the names they depend on (read with `project.read`; `project.requirements` is still empty here). */
  dependencies?(project: InitProject): Iterable<string>;
  /** A service plugin: why the project needs it (`psycopg2 in requirements.txt`), or undefined. */
  detect?(project: InitProject): string | undefined;
  /** Example values of the plugin's settings keys, written commented out (a test checks them against the schema). */
  examples?(project: InitProject): Record<string, unknown>;
}

/** Identity helper that gives a plugin object its type. */
export function definePlugin<S extends SettingsShape = SettingsShape>(plugin: Plugin<S>): Plugin<S> {
  return plugin;
}

/** A project loaded from its config file. */
export interface Project {
  site: Site;
  /** Every plugin that is active for the site: fixed stack, enabled services, local plugins. */
  plugins: Plugin[];
}

/** What core lends a plugin's CLI commands. */
export interface CommandKit {
  /** Global options (--dry-run, --verbose, --quiet). */
  options(): RunOptions;
  readonly log: Logger;
  /** Load kraftwerk.yaml from the working directory (or --config); throws ConfigError when invalid. */
  loadProject(): Promise<Project>;
  /** Resolve a node name through plugins, kraftwerk.yaml `nodes` and `ssh -G`. */
  resolveNode(name: string, project?: Project): Promise<SshTarget>;
  /** Connect to a node with host key verification (honours --accept-new-host-key and --dry-run). */
  connect(target: SshTarget): Promise<Remote>;
  /** Run tasks with listr2 progress (plain lines when not a TTY). */
  runTasks<C>(tasks: (TaskSpec<C> & { plugin?: string })[], ctx: C, options?: { concurrent?: boolean }): Promise<void>;
  /** Ask a yes/no question; false when there is no TTY (callers offer a --yes flag). */
  confirm(question: string): Promise<boolean>;
}
