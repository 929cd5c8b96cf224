import type { NodeContext } from './context.ts';

/**
 * How a check of `kraftwerk doctor` came out: `ok` holds, `warning` holds for now but
 * wants attention soon (shown as `!`, the exit status stays 0), `error` does not hold
 * (shown as `✖`, exit 1).
 */
export type DoctorLevel = 'ok' | 'warning' | 'error';

/** What one check found. */
export interface DoctorFinding {
  level: DoctorLevel;
  /** What was found, one line: `valid until 2027-03-01 (88 days)`. */
  detail: string;
  /** What to do about it (for a warning or an error): a command to run, a file to fix. */
  hint?: string;
  /** The check's name when one check reports several things (one line per site); else the check's own. */
  check?: string;
}

/** One line of `kraftwerk doctor`, and one entry of `--json` (the field names are stable for scripts). */
export interface DoctorResult {
  check: string;
  /** The node checked; null for the checks of this machine. */
  node: string | null;
  /** False only for an error: a warning holds. */
  ok: boolean;
  level: DoctorLevel;
  detail: string;
  hint: string | null;
  /** The plugin that contributed the check; null for core's. */
  plugin: string | null;
}

/** A check a plugin adds on each node doctor checks (Plugin.doctorChecks). */
export interface NodeDoctorCheck {
  /** Shown in front of each line: `certificate`. */
  readonly name: string;
  /**
   * Read-only: look, never change anything (doctor runs on live nodes, also in cron).
   * `ctx.remote` is connected; `ctx.site` is the project's site (a placeholder outside a
   * project). Return nothing when the check does not apply (the feature is off).
   */
  run(ctx: NodeContext): Promise<DoctorFinding | readonly DoctorFinding[] | undefined>;
}

/** The checks plugins add to `kraftwerk doctor` (Plugin.doctorChecks), each recorded as its plugin's. */
export class DoctorChecks {
  constructor(
    private readonly plugin = 'core',
    private readonly items: (NodeDoctorCheck & { plugin: string })[] = [],
  ) {}

  /** A check run on every node doctor checks, after core's own. */
  node(check: NodeDoctorCheck): this {
    this.items.push({ ...check, plugin: this.plugin });
    return this;
  }

  forPlugin(plugin: string): DoctorChecks {
    return new DoctorChecks(plugin, this.items);
  }

  get nodeChecks(): readonly (NodeDoctorCheck & { plugin: string })[] {
    return this.items;
  }
}

/** The finding as a line of its own: a check that failed to run is an error that names it. */
export function doctorResult(check: string, node: string | null, finding: DoctorFinding, plugin: string | null = null): DoctorResult {
  return {
    check: finding.check ?? check,
    node,
    ok: finding.level !== 'error',
    level: finding.level,
    detail: finding.detail,
    hint: finding.hint ?? null,
    plugin,
  };
}
