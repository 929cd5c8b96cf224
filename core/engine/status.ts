import type { Script } from '../shell/sh.ts';
import { Stage } from './tasks.ts';

/** One supervised service of a site, as `kraftwerk status` shows it. */
export interface SiteService {
  service: string;
  /** run, down, finish, fail, warning, `not linked`, or unknown when the supervisor could not tell. */
  state: string;
  pid?: number;
  /** Seconds in the current state. */
  seconds?: number;
  /** Set when a service is up but was told to be down, or similar notes from the supervisor. */
  note?: string;
  /** The release the service runs (or last ran), when it is tied to one. */
  release?: string;
  /**
   * What the supervisor was told: `up` when the service is meant to run (also after a reboot),
   * `down` when it is meant to stay stopped (a spare); unset when it cannot tell.
   * `kraftwerk doctor` fails a service meant to be up that does not run.
   */
  wanted?: 'up' | 'down';
  /** The command, as root on the node, that starts the service again (shown by `kraftwerk doctor`). */
  start?: string;
}

/** What `kraftwerk status` knows of one site on a node. */
export interface SiteStatus {
  name: string;
  domains: string[];
  /** Live release id, if deployed. */
  release?: string;
  /** The live release's record (time, deployer, revision), when kept. */
  releaseInfo?: { time?: string; deployer?: string; revision?: string };
  /** Filled in by the plugins' site parts (see NodeStatusParts.site). */
  services: SiteService[];
  /** KiB used by each part of /srv/<site>. */
  disk: { releases: number; venvs: number; uploads: number; backups: number };
  /** Id of the newest dump or backup, and of the newest scheduled/`backup` one. */
  lastDump?: string;
  lastBackup?: string;
  /** What the project's plugins reported through the `status` hook (only for the project's own site). */
  plugins?: Record<string, Record<string, unknown>>;
}

/** What `kraftwerk status` knows of one node. */
export interface NodeStatus {
  node: string;
  /** The node's roles in its group, when the group is split by role (kraftwerk.yaml `roles:`). */
  roles?: string[];
  uptimeSeconds?: number;
  /** The node-wide processes the plugins named (NodeStatusParts.process), in their order. */
  system: Record<string, 'running' | 'stopped'>;
  sites: SiteStatus[];
}

/** A node-wide process on the `node …:` line of `kraftwerk status`. */
export interface StatusProcess {
  plugin: string;
  /** Shown as `<name> running|stopped`; also its key in `--json`. */
  name: string;
  /** The exact process name (`pgrep -x`). */
  processName: string;
  stage: number;
}

/** Lines a plugin adds to the facts `kraftwerk status` gathers for each site on the node. */
export interface StatusSitePart {
  /** The first word of each line the script prints; each is handed to `read`. */
  readonly keys: readonly string[];
  /**
   * Shell text run once for every Kraftwerk site on the node (also a site of another project),
   * read-only, in a subshell where `$s` is the site's name and `$r` its folder (/srv/<site>).
   * It prints `<key> <value>` lines.
   */
  readonly script: Script;
  /** Take one printed line into the site's status (e.g. push a service). */
  read(key: string, value: string, site: SiteStatus): void;
}

/** Keys of the lines core prints for a site (see statusCommand in the status action). */
export const CORE_STATUS_KEYS: readonly string[] = ['site', 'domains', 'release', 'record', 'disk', 'lastdump', 'lastbackup'];

/**
 * What plugins contribute to `kraftwerk status` for a whole node: its processes
 * and what each site on it runs. One read-only command gathers every part (core
 * never asks a plugin at run time), so status also works outside a project,
 * for sites of other projects, with the plugins every node has.
 */
export class NodeStatusParts {
  constructor(
    private readonly plugin = 'core',
    private readonly shared: { processes: StatusProcess[]; siteParts: (StatusSitePart & { plugin: string })[] } = { processes: [], siteParts: [] },
  ) {}

  /**
   * A node-wide process, e.g. `process('postgresql', 'postgres')`. `stage` orders the
   * processes of different plugins (lower first; equal stages keep the plugins' order).
   */
  process(name: string, processName: string, stage: number = Stage.DEFAULT): this {
    this.shared.processes.push({ plugin: this.plugin, name, processName, stage });
    return this;
  }

  /** Lines for each site on the node; a key may have one owner, and core's own keys are taken. */
  site(part: StatusSitePart): this {
    for (const key of part.keys) {
      const owner = CORE_STATUS_KEYS.includes(key) ? 'core' : this.shared.siteParts.find((p) => p.keys.includes(key))?.plugin;
      if (owner) throw new Error(`plugin ${this.plugin}: the status key "${key}" is ${owner}'s`);
    }
    this.shared.siteParts.push({ ...part, plugin: this.plugin });
    return this;
  }

  /** The same parts, recording what is added as `plugin`'s. */
  forPlugin(plugin: string): NodeStatusParts {
    return new NodeStatusParts(plugin, this.shared);
  }

  get processes(): StatusProcess[] {
    // Array#sort is stable: equal stages keep the order the plugins were applied in.
    return [...this.shared.processes].sort((a, b) => a.stage - b.stage);
  }

  get siteParts(): readonly (StatusSitePart & { plugin: string })[] {
    return this.shared.siteParts;
  }
}
