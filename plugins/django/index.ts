/**
 * django: before the release commands run Django's `migrate`, asks Django for
 * the plan of the new release (`migrate --plan`, in the new release, as the
 * site user, with its environment: the way the release commands run) and
 * refuses the deploy, before any migration ran, when the plan removes or
 * renames what the release still serving uses (plan.ts). The refusal fails
 * the configure phase: the new release is removed and the live one serves on,
 * its tables as they were. `--allow-destructive-migrations` or
 * `migrations: {check: false}` lets such a plan through; docs/operations.md
 * says how to ship the change in two deploys instead.
 *
 * Runs nothing on a node (no file, folder or process of its own): only
 * read-only Django commands as the site user.
 */
import { definePlugin, deployTimeouts, inSiteEnv, KraftwerkError, raw, type Script, settingsOf, sh, Stage, z, type DeployContext, type Site } from '../../core/index.ts';
import { alteredFields, describeDestructive, destructiveOperations, migratePrefix, notNullWithoutDefault, parsePlan } from './plan.ts';

const PLUGIN_NAME = 'django';

/** The keys of kraftwerk.yaml the django plugin owns (`migrations.check` reaches no node: a boolean). */
export const DJANGO_SETTINGS = {
  migrations: z
    .strictObject({
      check: z.boolean().default(true).describe('Refuse a deploy whose migrations break the release still serving (DeleteModel, RemoveField, RenameField, RenameModel, AlterField to NOT NULL without a default)'),
    })
    .prefault({})
    .describe('Checks of the Django migrations a release command runs (`manage.py migrate`), before they run'),
};

/** Runs a read-only Django command in the new release the way the release commands run. */
async function inRelease(ctx: DeployContext, site: Site, command: string | Script): Promise<string> {
  const { stdout } = await ctx.remote.exec(inSiteEnv(site, { dir: ctx.release.path, venv: ctx.release.venv, command }), {
    interruptible: true,
    timeoutMs: deployTimeouts(site.config).releaseCommandMs,
  });
  return stdout;
}

export default definePlugin({
  name: PLUGIN_NAME,
  runsOn: ['web'],
  description: 'refuses Django migrations that break the release still serving (`migrate --plan` before the release commands)',
  settings: DJANGO_SETTINGS,
  init: {
    examples: () => ({ migrations: { check: true } }),
  },
  apply(hooks, site) {
    const prefix = migratePrefix(site.config.release);
    // No release command migrates, or the check is off: the plugin taps nothing.
    if (!prefix || !settingsOf(site, DJANGO_SETTINGS).migrations.check) return;

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'check migrations',
        // After the release's environment is written (WRITE_FILES), before the snapshot (+40) and the release commands (+50).
        stage: Stage.AFTER_FILES + 30,
        skip: (c) => (c.deploy.allowDestructiveMigrations ? 'migrations not checked (--allow-destructive-migrations)' : false),
        run: async (ctx, task) => {
          const out = await inRelease(ctx, site, `${prefix} migrate --plan`);
          if (ctx.remote.dryRun) return task.title('check migrations (dry run: plan not read)');
          let plan;
          try {
            plan = parsePlan(out);
          } catch (err) {
            throw new KraftwerkError(`\`${prefix} migrate --plan\` on ${ctx.node} printed no plan (${(err as Error).message}):\n${out.trim().split('\n').slice(-5).join('\n')}`, {
              hint: 'Run it with `kraftwerk run` to see why, or turn the check off with `migrations: {check: false}`.',
            });
          }
          const notNull = new Set<string>();
          for (const migration of [...new Set(alteredFields(plan).map((a) => a.migration))]) {
            const dot = migration.indexOf('.');
            const sql = await inRelease(ctx, site, sh`${raw(prefix)} sqlmigrate ${migration.slice(0, dot)} ${migration.slice(dot + 1)}`);
            for (const description of notNullWithoutDefault(sql)) notNull.add(`${migration} ${description}`);
          }
          const bad = destructiveOperations(plan, notNull);
          if (bad.length) {
            throw new KraftwerkError(
              `the migrations of release ${ctx.release.id} break the release still serving during the switch; nothing was migrated:\n${describeDestructive(bad)}`,
              {
                hint: 'Ship the change in two deploys (expand, then contract: see docs/operations.md), or deploy with --allow-destructive-migrations (or `migrations: {check: false}`) if the downtime is acceptable.',
              },
            );
          }
          const count = plan.reduce((n, m) => n + m.operations.length, 0);
          task.title(plan.length ? `check migrations (${plan.length} to apply, ${count} operations, none destructive)` : 'check migrations (none to apply)');
        },
      });
    });
  },
});
