import type { Script } from '../shell/sh.ts';

/** One source of logs `kraftwerk logs` can show. */
export interface LogSource {
  /**
   * The flag of `kraftwerk logs` that shows this source instead of the site's own
   * logs (`nginx` for --nginx). Without one, it is the site's own logs: shown by
   * default, and one of them with --process.
   */
  readonly flag?: string;
  /**
   * Files only root and a daemon write (nginx's logs): read as root. Otherwise the
   * command runs as the site user: a site's log folders are its own, and root must
   * not follow a link the site put there (a `current` pointing at /etc/shadow).
   */
  readonly asRoot?: boolean;
  /**
   * The command that prints the logs. `tail` is the tail to run (`tail -n N`, with -F
   * when following); `process` is what --process named. It exits 3 with a message on
   * stderr when there is nothing to show.
   */
  command(tail: readonly string[], options: { process?: string }): Script;
}

/** The log sources plugins give `kraftwerk logs` (Plugin.logs). */
export class LogSources {
  constructor(
    private readonly plugin = 'core',
    private readonly items: (LogSource & { plugin: string })[] = [],
  ) {}

  add(source: LogSource): this {
    this.items.push({ ...source, plugin: this.plugin });
    return this;
  }

  /** The same collector, recording sources as `plugin`'s. */
  forPlugin(plugin: string): LogSources {
    return new LogSources(plugin, this.items);
  }

  /** The source `flag` selects (the site's own logs without one); the last plugin's wins. */
  find(flag?: string): (LogSource & { plugin: string }) | undefined {
    return [...this.items].reverse().find((s) => s.flag === flag);
  }
}
