import { createHash } from 'node:crypto';
import type { Site } from '../config/site.ts';
import type { Remote, RemoteFile } from '../remote/remote.ts';
import type { Script } from '../shell/sh.ts';
import type { Topology } from './topology.ts';

/** Options every command shares. */
export interface RunOptions {
  dryRun: boolean;
  verbose: boolean;
  quiet: boolean;
}

/** Messages for the user outside of task progress lines. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

/** What core learned about a node in one probe at the start of a command. */
export interface NodeFacts {
  /** setup-node has run (its marker exists). */
  setUp: boolean;
  /** Version of Python 3 on the node, e.g. "3.11.2". */
  pythonVersion?: string;
  /** Release id `current` points at, if the site is deployed. */
  currentRelease?: string;
  /** Domains of the other Kraftwerk sites on the node, by site name. */
  otherSites: Record<string, string[]>;
  /** The live release's record (id, time, deployer, fingerprint…), when it has one. */
  liveRecord?: Record<string, unknown>;
  /** The site's environment as last written (the live release's .kraftwerk/env). */
  env: Record<string, string>;
  /** Variables set by `kraftwerk env set` (shared/env.local). */
  envLocal: Record<string, string>;
  // Answers to the questions plugins asked in their taps (ctx.probe). A question
  // nobody asked has no answer in any of these: treat that as "unknown" and do the work.
  /** Paths asked with `probe.exists` or `probe.read` that exist. */
  exists: Set<string>;
  /** Paths asked with `probe.exists` or `probe.read` that do not exist. */
  absent: Set<string>;
  /** Content of the files asked with `probe.read` that exist. */
  files: Map<string, string>;
  /** Matches of each pattern asked with `probe.glob` (an empty list: nothing matched). */
  globs: Map<string, string[]>;
  /** Debian packages asked with `probe.installed` that are installed. */
  installed: Set<string>;
}

/**
 * Questions for the probe core runs at the start of a deploy. Plugins ask in
 * their taps (tasks are collected before anything runs); core gathers every
 * answer in the same single command and puts it in `ctx.facts`, so a task can
 * skip itself when there is nothing to do, at no cost of its own.
 *
 *     hooks.configure.tap(NAME, (ctx, tasks) => {
 *       ctx.probe.exists(dir);
 *       tasks.add({ title: 'folder', skip: (c) => (c.facts.exists.has(dir) ? 'folder (unchanged)' : false), run: … });
 *     });
 *
 * Answers describe the node before the deploy changed anything. Under
 * `--dry-run` nothing is probed: no question has an answer.
 */
export class NodeProbe {
  readonly paths = new Set<string>();
  readonly reads = new Set<string>();
  readonly patterns = new Set<string>();
  readonly packages = new Set<string>();

  /** Does `path` exist (any kind of file, also a dangling symlink)? → `facts.exists` / `facts.absent`. */
  exists(...paths: string[]): this {
    for (const p of paths) this.paths.add(p);
    return this;
  }

  /** The content of a small text file (a marker, a config file) → `facts.files`; a missing one goes to `facts.absent`. */
  read(...paths: string[]): this {
    for (const p of paths) this.reads.add(p);
    return this;
  }

  /** Paths matching a shell pattern, e.g. `/etc/sv/kraftwerk-shop-*` → `facts.globs`. */
  glob(...patterns: string[]): this {
    for (const p of patterns) this.patterns.add(p);
    return this;
  }

  /** Are these Debian packages installed? → `facts.installed` (those that are). */
  installed(...names: string[]): this {
    for (const n of names) this.packages.add(n);
    return this;
  }

  get empty(): boolean {
    return !this.paths.size && !this.reads.size && !this.patterns.size && !this.packages.size;
  }
}

/** The context every hook of a command gets for one node. */
export interface NodeContext {
  readonly site: Site;
  /** The node's name as the user wrote it (config key, sandbox name or host). */
  readonly node: string;
  /** The server connection. Core connects in its first task: use it from tasks, not from taps. */
  remote: Remote;
  readonly options: RunOptions;
  readonly log: Logger;
  /** Scratch space plugins use to pass values between their own hooks. */
  readonly state: Map<string, unknown>;
  /** This node's roles and the other nodes of the command's group (see topology.ts, `hasRole`). */
  readonly topology: Topology;
}

/** Information about the release a deploy creates. */
export interface Release {
  /** Sortable id, e.g. 20261125T170102Z. */
  id: string;
  /** Absolute path on the server. */
  path: string;
  /** The release that was live when the deploy started, if any. */
  previous?: string;
  /** Path of the virtualenv this release runs in (set in install). */
  venv: string;
  /** Git revision of the project, when it is a git checkout. */
  revision?: string;
  /** Who deployed (local user@host). */
  deployer: string;
}

export interface DeployOptions {
  /** Reinstall requirements even when the venv hash is unchanged (`--upgrade-packages`). */
  upgradePackages: boolean;
  /** How long to wait for another deploy's lock (`--lock-wait`), in ms. */
  lockWaitMs: number;
  /** Deploy even when nothing changed since the live release (`--force`). */
  force?: boolean;
  /** Let migrations run that break the release still serving (`--allow-destructive-migrations`; the plugin that checks them reads it). */
  allowDestructiveMigrations?: boolean;
}

/** The context of the deploy lifecycle hooks (preSync → restart). */
export interface DeployContext extends NodeContext {
  readonly release: Release;
  readonly deploy: DeployOptions;
  /** Questions for core's probe: ask them in taps (see NodeProbe). */
  readonly probe: NodeProbe;
  /** Filled in by core's probe during preSync; read it from tasks, not from taps. */
  facts: NodeFacts;
  /** The site's final environment; filled by the `environment` hook before configure tasks run. */
  env: Record<string, string>;
  /** Files to write in configure (core writes them all at Stage.WRITE_FILES). */
  readonly files: RemoteFileSet;
}

/** Files plugins want on the server; core writes them in one round trip. */
export class RemoteFileSet {
  private readonly byPath = new Map<string, RemoteFile>();
  /** Paths whose content changed (or that were removed) on the server, known after Stage.WRITE_FILES. */
  readonly changed = new Set<string>();

  add(file: RemoteFile): this {
    this.byPath.set(file.path, file);
    return this;
  }

  /**
   * A file that must not be on the server (a plugin turned off, a job dropped
   * from the config): removed in the same round trip as the writes, and listed
   * in `changed` when it was there. `atSwitch`: removed by the switch instead (see RemoteFile.atSwitch).
   */
  remove(path: string, options: { atSwitch?: boolean } = {}): this {
    this.byPath.set(path, { path, content: '', remove: true, ...(options.atSwitch ? { atSwitch: true } : {}) });
    return this;
  }

  get all(): RemoteFile[] {
    return [...this.byPath.values()];
  }

  /** True when any written file under `prefix` changed. */
  changedUnder(prefix: string): boolean {
    for (const p of this.changed) if (p.startsWith(prefix)) return true;
    return false;
  }
}

/** The context of setup-node. */
export interface SetupContext extends NodeContext {
  /** Tasks push a short description of each change they made; none means "nothing changed". */
  readonly changes: string[];
}

/** What plugins contribute to setup-node besides tasks. */
export class SetupPackages {
  constructor(
    private readonly plugin = 'core',
    private readonly packages = new Map<string, string>(),
  ) {}
  /** Debian packages this plugin needs on every node; installed in one apt run. */
  add(...names: string[]): this {
    for (const n of names) if (!this.packages.has(n)) this.packages.set(n, this.plugin);
    return this;
  }
  /** The same set, recording packages as `plugin`'s (core does this for each tap). */
  forPlugin(plugin: string): SetupPackages {
    return new SetupPackages(plugin, this.packages);
  }
  get names(): string[] {
    return [...this.packages.keys()];
  }
}

/** Environment variables contributed by plugins (DATABASE_URL, UPLOADS_PATH, …). */
export class EnvironmentVars {
  readonly vars = new Map<string, { value: string; plugin: string; secret: boolean }>();
  constructor(private readonly plugin = 'core', shared?: EnvironmentVars) {
    if (shared) this.vars = shared.vars;
  }
  set(name: string, value: string, options?: { secret?: boolean }): this {
    this.vars.set(name, { value, plugin: this.plugin, secret: options?.secret ?? false });
    return this;
  }
  forPlugin(plugin: string): EnvironmentVars {
    return new EnvironmentVars(plugin, this);
  }
  toRecord(): Record<string, string> {
    return Object.fromEntries([...this.vars].map(([k, v]) => [k, v.value]));
  }
}

/** The context of the environment hook. */
export interface EnvironmentContext {
  readonly site: Site;
  readonly node: string;
  readonly topology: Topology;
  /** The environment as it is on the server now (empty on a first deploy): reuse generated secrets from it. */
  readonly previous: Record<string, string>;
}

/** Where a dump is written / read on the server. */
export interface DumpContext extends NodeContext {
  /** Folder on the server that holds this dump, e.g. /srv/site/backups/dump-20261125T170102Z */
  readonly dir: string;
  readonly id: string;
  /**
   * `dump` (the default): everything the site owns (kraftwerk dump, backups, sync-services).
   * `snapshot`: only what release commands (migrations) change — the database —
   * taken before they run, so `rollback --with-data` can put it back.
   */
  readonly kind?: 'dump' | 'snapshot';
}

/** A status line a plugin contributes to `kraftwerk status`. */
export class StatusReport {
  constructor(
    private readonly plugin = 'core',
    /** What was reported, by plugin, then key. */
    readonly values: Record<string, Record<string, unknown>> = {},
  ) {}
  add(key: string, value: unknown): this {
    (this.values[this.plugin] ??= {})[key] = value;
    return this;
  }
  /** The same report, recording lines as `plugin`'s (core does this for each tap). */
  forPlugin(plugin: string): StatusReport {
    return new StatusReport(plugin, this.values);
  }
}

/** The context of the reload hook: the live release stays, its environment or data changed. */
export interface ReloadContext extends NodeContext {
  /** The site's new environment (what the live release's .kraftwerk/env now holds). */
  env: Record<string, string>;
  /** The environment before the change. */
  readonly previousEnv: Record<string, string>;
  /** Files to write; core writes them all at Stage.WRITE_FILES, then RELOAD tasks run. */
  readonly files: RemoteFileSet;
}

/** The context of the destroy hook. */
export interface DestroyContext extends NodeContext {
  /** `--keep-data`: leave the site's uploads and backups (and its user, who owns them) in place. */
  readonly keepData: boolean;
}

/** How a deploy or a rollback ended (the `outcome` hook). */
export type OutcomeStatus = 'deployed' | 'failed' | 'rolled_back';

/**
 * The context of the outcome hook: told once per `deploy` or `rollback`, after it ended, for
 * every node at once (a plugin tells someone: a chat, a monitor). Also under --dry-run, with
 * `options.dryRun` set: then say what would be sent, send nothing.
 */
export interface OutcomeContext {
  readonly site: Site;
  readonly command: 'deploy' | 'rollback';
  /** `deployed` or `rolled_back` when the command succeeded on every node, else `failed`. */
  readonly status: OutcomeStatus;
  /** The nodes the command ran on, as the user named them (a group expanded). */
  readonly nodes: readonly string[];
  /**
   * The release the command put live (a deploy's new one, the one a rollback brought back; on a
   * failure, the one it tried), with the one that was live before. Absent when a rollback failed
   * before it chose one.
   */
  readonly release?: { readonly id: string; readonly revision?: string; readonly previous?: string };
  /** Who ran the command (local user@host). */
  readonly deployer: string;
  /** From the start of the command to its end, in ms. */
  readonly durationMs: number;
  /** Why it failed: the message the command ends with (`failed` only). */
  readonly error?: string;
  /** Where the site answers (what the deploy's last line shows). */
  readonly url: string;
  readonly options: RunOptions;
  readonly log: Logger;
}

// ---- Collectors of the deploy lifecycle's extension points (see lifecycleHooks in hooks.ts) ----

/** A script a plugin contributed, with the plugin's name. */
export interface ContributedScript {
  readonly plugin: string;
  readonly script: Script;
}

/**
 * What plugins add to core's switch of `current` (the `switch` extension point).
 * Core runs the scripts as root, in the order they were added (plugins in the
 * order they were applied), inside its own remote command: the `afterSwitch`
 * ones right after `current` was renamed, with signals ignored (a dropped
 * connection does not stop them half way); the `onUndo` ones when a deploy
 * failed or was stopped before it switched this node, while its deploy lock
 * is still its own. Neither runs under --dry-run beyond being shown.
 */
export class SwitchSteps {
  constructor(
    private readonly plugin = 'core',
    private readonly items: { after: ContributedScript[]; undo: ContributedScript[] } = { after: [], undo: [] },
  ) {}

  /** Run `script` once `current` points at the new release (it does not run when the switch failed). */
  afterSwitch(script: Script): this {
    this.items.after.push({ plugin: this.plugin, script });
    return this;
  }

  /** Run `script` to undo a release that never went live (e.g. stop what was started for it). */
  onUndo(script: Script): this {
    this.items.undo.push({ plugin: this.plugin, script });
    return this;
  }

  /** The same steps, recording what is added as `plugin`'s (core does this for each tap). */
  forPlugin(plugin: string): SwitchSteps {
    return new SwitchSteps(plugin, this.items);
  }

  get afterSwitchScripts(): readonly ContributedScript[] {
    return this.items.after;
  }

  get undoScripts(): readonly ContributedScript[] {
    return this.items.undo;
  }
}

/** How core's health check asks the site (the `healthcheck` extension point): taps may change it. */
export interface HealthCheckRequest {
  /** Ask over HTTPS (e.g. the site has a certificate, and plain HTTP only redirects). */
  https: boolean;
}

/**
 * What a release is made of besides its files, for the no-change check of a deploy (the
 * `fingerprint` extension point): a tap adds what its plugin's rendered configuration depends
 * on beyond kraftwerk.yaml and the project's files, which core covers itself (e.g. python: the
 * requirements and the node's Python version). Only a digest of each value is kept, never the
 * value: a part may carry a secret.
 */
export class FingerprintParts {
  constructor(
    private readonly plugin = 'core',
    private readonly parts: Map<string, string> = new Map(),
  ) {}

  /** Add `value` under `name` (recorded as `plugin:name`; core's parts have no prefix). */
  add(name: string, value: string | Buffer): this {
    const key = this.plugin === 'core' ? name : `${this.plugin}:${name}`;
    this.parts.set(key, createHash('sha256').update(value).digest('hex'));
    return this;
  }

  /** The same parts, recording what is added as `plugin`'s (core does this for each tap). */
  forPlugin(plugin: string): FingerprintParts {
    return new FingerprintParts(plugin, this.parts);
  }

  /** Each part's name and the digest of its value. */
  get entries(): ReadonlyMap<string, string> {
    return this.parts;
  }

  /** One digest of every part, whatever the order they were added in. */
  get digest(): string {
    const lines = [...this.parts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}\n`);
    return createHash('sha256').update(lines.join('')).digest('hex');
  }
}
