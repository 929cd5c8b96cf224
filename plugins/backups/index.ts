/**
 * backups: `backups: {schedule, keep}` in kraftwerk.yaml. Writes the script the
 * cron plugin schedules: every plugin's `dump` tap (database in pg_dump's custom
 * format, uploads as an archive, …) into a timestamped folder under
 * /srv/<site>/backups/, then rotation down to `keep` scheduled backups.
 * With `verify: true` every plugin's `verify` tap checks the new backup in the
 * script before it is kept (see renderBackupScript).
 * `kraftwerk backup`, `backups`, `backup verify` and `backup --download` work on the same folders.
 */
import { definePlugin, hasRole, Stage, type Hooks, type Site, settingsOf } from '../../core/index.ts';
import { backupScriptPath, recordDumpCommands, renderBackupScript } from './script.ts';
import { BACKUPS_SETTINGS } from './settings.ts';

const PLUGIN_NAME = 'backups';

/** Every role some node of the group has: a node that had them all would hold every part of a backup. */
function knownEverywhere(ctx: { topology: { nodes: readonly { roles: ReadonlySet<string> }[] } }): string[] {
  return [...new Set(ctx.topology.nodes.flatMap((n) => [...n.roles]))];
}

export default definePlugin({
  name: PLUGIN_NAME,
  init: { examples: () => ({ backups: { schedule: '@daily', keep: 7 } }) },
  description: 'scheduled backups (`backups:`): every service dumped into /srv/<site>/backups, rotated',
  settings: BACKUPS_SETTINGS,
  // `kraftwerk backup` by hand rotates down to the same number as the scheduled one.
  keepBackups: (site) => settingsOf(site, BACKUPS_SETTINGS).backups?.keep,
  apply(hooks: Hooks, site: Site) {
    const settings = settingsOf(site, BACKUPS_SETTINGS).backups;
    const script = backupScriptPath(site);

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'backup script',
        run: async (ctx, task) => {
          if (!settings) {
            // A script left from an earlier deploy goes (with the other files, in one round trip).
            ctx.files.remove(script);
            task.title('backups (off)');
            return;
          }
          const scratch = `${site.paths.backups}/.scheduled`;
          const base = { site, node: ctx.node, options: ctx.options, log: ctx.log, state: new Map(), topology: ctx.topology };
          const { commands, plugins } = await recordDumpCommands(hooks, base, scratch);
          if (ctx.topology.declared && hasRole(ctx, 'cron')) {
            // In a group split by role, a part whose node is another (the database on the db node) is not in this node's backup.
            const every = await recordDumpCommands(hooks, { ...base, topology: { ...ctx.topology, roles: new Set(knownEverywhere(ctx)) } }, scratch);
            const missing = every.plugins.filter((p) => !plugins.includes(p));
            if (missing.length) {
              ctx.log.warn(
                `backups: the scheduled backup on ${ctx.node} holds ${plugins.join(', ') || 'nothing'}; ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} on other nodes and not in it: back the whole site up with kraftwerk backup (it dumps each node's part)`,
              );
            }
          }
          // Only the parts the backup has are checked (a plugin may verify data it does not dump here).
          const verify = settings.verify ? await recordDumpCommands(hooks, base, scratch, 'verify', plugins) : { commands: [], plugins: [] };
          const checks = verify.plugins;
          ctx.files.add({
            path: script,
            content: renderBackupScript(site, commands, plugins, settings.keep, verify.commands),
            mode: 0o700,
            owner: 'root',
            group: 'root',
          });
          task.title(
            `backup script (${plugins.join(', ') || 'nothing to back up'}; ${settings.schedule}, keep ${settings.keep}${settings.verify ? `, verified: ${checks.join(', ') || 'nothing to check'}` : ''})`,
          );
        },
      });
    });

    hooks.status.tapPromise(PLUGIN_NAME, async (_ctx, report) => {
      report.add('schedule', settings ? `${settings.schedule}, keep ${settings.keep}${settings.verify ? ', verified' : ''}` : 'off');
    });
  },
});
