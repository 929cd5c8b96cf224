import { createInterface } from 'node:readline/promises';
import type { Logger, RunOptions } from '../engine/context.ts';
import { resolveTarget } from '../remote/node.ts';
import type { CommandKit, Plugin, Project } from '../engine/plugin.ts';
import { type BuiltinPlugins, loadBuiltins } from '../engine/registry.ts';
import { runTasks, type RunnableTask, type TaskGroup } from '../engine/runner.ts';
import type { Remote, SshTarget } from '../remote/remote.ts';
import type { Site } from '../config/site.ts';
import { maskSecrets } from '../shell/sh.ts';
import { KraftwerkError } from '../errors.ts';

export interface GlobalOptions extends RunOptions {
  config?: string;
  acceptNewHostKey: boolean;
  /** Answer yes to every confirmation (commands expose it as --yes). */
  yes?: boolean;
}

const color = (code: number, s: string) =>
  process.env.NO_COLOR || !process.stderr.isTTY ? s : `\u001b[${code}m${s}\u001b[39m`;

export const consoleLogger = (options: RunOptions): Logger => ({
  info: (m) => {
    if (!options.quiet) process.stdout.write(`${maskSecrets(m)}\n`);
  },
  warn: (m) => process.stderr.write(`${color(33, 'warning:')} ${maskSecrets(m)}\n`),
});

/** Core's implementation of the services commands get (also lent to plugins' commands). */
export class CoreKit implements CommandKit {
  readonly log: Logger;
  private project?: Promise<Project>;
  private readonly remotes: Remote[] = [];
  /** close() ran: the command is over. */
  private closed = false;
  private commandPlugins?: Promise<Plugin[]>;

  constructor(
    private readonly globals: () => GlobalOptions,
    /** The built-in plugins, from the CLI wiring. */
    readonly builtins: BuiltinPlugins,
    private readonly cwd = process.cwd(),
  ) {
    this.log = {
      info: (m) => consoleLogger(this.globals()).info(m),
      warn: (m) => consoleLogger(this.globals()).warn(m),
    };
  }

  options(): GlobalOptions {
    return this.globals();
  }

  loadProject(): Promise<Project> {
    this.project ??= import('../engine/project.ts').then((m) => m.loadProject({ cwd: this.cwd, configPath: this.globals().config, builtins: this.builtins }));
    return this.project;
  }

  /** The project when there is a config file here, else undefined (for commands that also work without one). */
  async maybeProject(): Promise<Project | undefined> {
    const { findConfigFile } = await import('../config/load.ts');
    if (!this.globals().config && !(await findConfigFile(this.cwd))) return undefined;
    return this.loadProject();
  }

  /**
   * The plugins of node-wide commands (setup-node, status): those every node gets, plus
   * the project's own when run in a project. Outside one, taps that do not depend on a
   * site get a placeholder site.
   */
  async nodeWide(project: Project | undefined): Promise<{ plugins: Plugin[]; site: Site }> {
    const builtin = await loadBuiltins(this.builtins, this.builtins.node);
    const extra = (project?.plugins ?? []).filter((p) => !builtin.some((b) => b.name === p.name));
    let site = project?.site;
    if (!site) {
      const [{ createSite }, { builtinConfigSchema }] = await Promise.all([import('../config/site.ts'), import('../engine/project.ts')]);
      site = createSite((await builtinConfigSchema(this.builtins)).parse({ domain: 'localhost' }), { configFile: '', sourceDir: this.cwd, name: 'node' });
    }
    return { plugins: [...builtin, ...extra], site };
  }

  private allCommandPlugins(): Promise<Plugin[]> {
    this.commandPlugins ??= loadBuiltins(this.builtins, this.builtins.commands);
    return this.commandPlugins;
  }

  async resolveNode(name: string, project?: Project): Promise<SshTarget> {
    const plugins = [...(await this.allCommandPlugins()), ...(project?.plugins ?? [])];
    return resolveTarget(name, { config: project?.site.config, plugins });
  }

  /** `rsyncSoon`: the command will rsync (a deploy), so rsync's own connection opens now too. */
  async connect(target: SshTarget, options: { rsyncSoon?: boolean } = {}): Promise<Remote> {
    const opts = this.globals();
    let remote: Remote;
    if (opts.dryRun) {
      const { DryRunRemote } = await import('../remote/dryrun.ts');
      remote = new DryRunRemote(target, (line: string) => process.stdout.write(`${maskSecrets(line)}\n`));
    } else {
      const { connectSsh } = await import('../remote/ssh.ts');
      remote = await connectSsh(target, {
        acceptNewHostKey: opts.acceptNewHostKey,
        rsyncSoon: options.rsyncSoon,
        confirmHostKey: process.stdin.isTTY
          ? (fp: string) => this.confirm(`The authenticity of ${target.host} can't be established (key ${fp}). Trust it and record it in known_hosts?`)
          : undefined,
      });
      if (opts.verbose) {
        const { VerboseRemote } = await import('../remote/verbose.ts');
        remote = new VerboseRemote(remote, (line) => process.stderr.write(`${line}\n`));
      }
    }
    // The command ended while this connection was being made (another node of its group failed first):
    // nothing will close it, and an open connection would keep the CLI from exiting.
    if (this.closed) {
      await remote.close().catch(() => undefined);
      throw new KraftwerkError(`connected to ${target.name} after the command had ended`);
    }
    this.remotes.push(remote);
    return remote;
  }

  runTasks<C>(
    tasks: (RunnableTask<C> | TaskGroup<C>)[],
    ctx: C,
    options?: { concurrent?: boolean; keepGoing?: boolean },
  ): Promise<void> {
    return runTasks(tasks, ctx, this.globals(), options);
  }

  async confirm(question: string): Promise<boolean> {
    if (this.globals().yes) return true;
    if (!process.stdin.isTTY) return false;
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question(`${question} [y/N] `);
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  }

  /** Close every connection this command opened. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.remotes.map((r) => r.close()));
  }
}

