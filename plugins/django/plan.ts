/**
 * Reading Django's migration plan: which release command migrates, the
 * command that asks Django for the plan of the new release (`migrate --plan`),
 * and which of its operations break the release still serving while the new
 * one starts beside it (blue/green): that release's code still reads and writes
 * the tables as they were.
 *
 * `migrate --plan` prints (Django 3.2 to 5.x; Debian 12 has 3.2):
 *
 *     Planned operations:
 *     notes.0002_remove_note_body
 *         Remove field body from note
 *
 * or `  No planned migration operations.`; each operation is its `describe()`,
 * indented by four spaces, prefixed with `Undo ` when a migration is unapplied.
 * An AlterField says only "Alter field x on y": whether it makes a column NOT
 * NULL without a default is read from its SQL (`sqlmigrate`), where PostgreSQL
 * gets `ALTER COLUMN "x" SET NOT NULL`, preceded by an `UPDATE` filling the
 * NULLs when the field has a default.
 */

/** One migration of the plan and its operations, as Django describes them. */
export interface PlannedMigration {
  /** `app_label.name`, e.g. notes.0002_remove_note_body. */
  migration: string;
  operations: string[];
}

/** An operation the release still serving cannot live with, and why. */
export interface DestructiveOperation {
  migration: string;
  /** The operation's class, e.g. RemoveField. */
  kind: string;
  /** Django's description, e.g. "Remove field body from note". */
  description: string;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

/**
 * The shell text before `migrate` in the first release command that runs Django's
 * migrate (`python manage.py`, `django-admin`), with the `cd` steps before it in that
 * command, or undefined when none does. `${prefix} migrate --plan` then asks the same
 * Django, in the same folder, for the plan.
 */
export function migratePrefix(release: readonly string[]): string | undefined {
  for (const command of release) {
    const steps = command.split(/&&|\|\||;/).map((s) => s.trim());
    for (const [i, step] of steps.entries()) {
      const m = /^(.*\b(?:manage\.py|django-admin(?:\.py)?))\s+migrate(?:\s|$)/.exec(step);
      if (m) return [...steps.slice(0, i).filter((s) => /^cd\s/.test(s)), m[1]!].join(' && ');
    }
  }
  return undefined;
}

/** The plan `migrate --plan` printed (see the file's comment); throws when the output is not one. */
export function parsePlan(stdout: string): PlannedMigration[] {
  const lines = stdout.replace(ANSI, '').split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === 'Planned operations:');
  if (start < 0) throw new Error('the output has no "Planned operations:" line');
  const plan: PlannedMigration[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.trim() || line.trim() === 'No planned migration operations.') continue;
    if (/^\S+\.\S+$/.test(line)) plan.push({ migration: line.trim(), operations: [] });
    else if (/^\s{2,}\S/.test(line) && plan.length) plan[plan.length - 1]!.operations.push(line.trim());
  }
  return plan;
}

const KINDS: [RegExp, string][] = [
  [/^Delete model \S+/, 'DeleteModel'],
  [/^Remove field \S+ from \S+/, 'RemoveField'],
  [/^Rename field \S+ on \S+ to \S+/, 'RenameField'],
  [/^Rename model \S+ to \S+/, 'RenameModel'],
];

/** `Alter field <field> on <model>` operations, whose SQL says whether they are destructive (notNullWithoutDefault). */
export function alteredFields(plan: readonly PlannedMigration[]): { migration: string; description: string }[] {
  return plan.flatMap((m) => m.operations.filter((op) => /^Alter field \S+ on \S+/.test(op)).map((description) => ({ migration: m.migration, description })));
}

/**
 * The operations of the plan the serving release breaks on: a table or column it
 * uses removed or renamed (not one of a model the plan itself creates first), and every operation of a migration being unapplied
 * (`Undo …`). `notNull` holds the AlterField descriptions found to make a column
 * NOT NULL without a default (notNullWithoutDefault).
 */
export function destructiveOperations(plan: readonly PlannedMigration[], notNull: ReadonlySet<string> = new Set()): DestructiveOperation[] {
  const out: DestructiveOperation[] = [];
  // A model created earlier in this same plan (a first deploy, a new app with Django's own
  // contenttypes.0002) is no table the serving release uses: what later migrations do to it is harmless.
  const created = new Set<string>();
  for (const { migration, operations } of plan) {
    const app = migration.slice(0, migration.indexOf('.'));
    for (const description of operations) {
      const made = /^Create (?:proxy )?model (\S+)/.exec(description);
      if (made) created.add(`${app}.${made[1]!.toLowerCase()}`);
      const model = /^(?:Delete model (\S+)|Rename model (\S+) to|(?:Remove field \S+ from|Rename field \S+ on|Alter field \S+ on) (\S+))/.exec(description);
      const name = model && (model[1] ?? model[2] ?? model[3])!.toLowerCase();
      if (name && created.has(`${app}.${name}`)) continue;
      const kind = description.startsWith('Undo ')
        ? 'unapplied migration'
        : (KINDS.find(([re]) => re.test(description))?.[1] ?? (notNull.has(`${migration} ${description}`) ? 'AlterField to NOT NULL without a default' : undefined));
      if (kind) out.push({ migration, kind, description });
    }
  }
  return out;
}

/**
 * Which `Alter field …` sections of a migration's SQL (`sqlmigrate`, whose
 * `-- <description>` comment heads each operation's statements) set a column
 * NOT NULL without first filling its NULLs from a default (no UPDATE).
 */
export function notNullWithoutDefault(sql: string): string[] {
  const found: string[] = [];
  let current: string | undefined;
  let body = '';
  const flush = () => {
    if (current && /SET NOT NULL/i.test(body) && !/^\s*UPDATE\s/im.test(body)) found.push(current);
  };
  for (const line of sql.replace(ANSI, '').split(/\r?\n/)) {
    const head = /^--\s+(Alter field \S+ on \S+)\s*$/.exec(line);
    if (head || /^--\s+\S/.test(line)) {
      flush();
      current = head?.[1];
      body = '';
    } else body += `${line}\n`;
  }
  flush();
  return found;
}

/** The refusal's list: one line per operation. */
export function describeDestructive(ops: readonly DestructiveOperation[]): string {
  return ops.map((o) => `  ${o.migration}: ${o.kind} (${o.description})`).join('\n');
}
